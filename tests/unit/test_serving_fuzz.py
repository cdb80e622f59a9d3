"""The upload routes under a fuzzer (Hypothesis): whatever bytes, form layout, headers or JSON a
client sends, the service answers 2xx or 4xx, never 5xx. Stand-in models, the real app."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from components.serving.source import ServedModels
from tests.unit.test_serving_service import StandInGrader, _api, _service

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _image(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 90, 60)).save(buffer, kind)
    return buffer.getvalue()


SEEDS = [_image("JPEG"), _image("PNG"), _image("WEBP"), _image("BMP"), _image("TIFF")]


@st.composite
def mangled_images(draw: st.DrawFn) -> bytes:
    """A real image with bytes flipped, cut, or spliced: what broken uploads look like."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=64))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict]]:
    folder = tmp_path_factory.mktemp("fuzz")
    service = _service(folder, ServedModels(StandInGrader(1, 9)))
    client, keys = _api(service, folder)
    with client:
        yield client, keys


@FUZZ
@given(body=st.one_of(mangled_images(), st.binary(max_size=2048)),
       filename=st.text(max_size=40), request_id=st.text(max_size=140))
def test_any_uploaded_file_gets_an_answer_or_a_4xx(api: tuple[TestClient, dict], body: bytes,
                                                   filename: str, request_id: str) -> None:
    client, keys = api
    headers = dict(keys["client"])
    if request_id.isascii() and "\r" not in request_id and "\n" not in request_id:
        headers["X-Request-ID"] = request_id
    response = client.post("/v1/grade", headers=headers, files={"file": (filename, body)})
    assert response.status_code < 500, response.text


@FUZZ
@given(body=st.binary(max_size=4096),
       content_type=st.sampled_from(["multipart/form-data; boundary=x", "multipart/form-data",
                                     "application/json", "image/jpeg", "text/plain", ""]))
def test_any_raw_body_gets_a_4xx_never_a_5xx(api: tuple[TestClient, dict], body: bytes,
                                             content_type: str) -> None:
    client, keys = api
    for route in ("/v1/grade", "/v1/grade/batch", "/v1/feedback"):
        response = client.post(route, content=body,
                               headers={**keys["expert"], "Content-Type": content_type})
        assert response.status_code < 500, (route, response.text)


@FUZZ
@given(files=st.lists(st.one_of(mangled_images(), st.binary(max_size=256)), max_size=40))
def test_any_batch_gets_one_answer_per_photo_or_a_4xx(api: tuple[TestClient, dict],
                                                      files: list[bytes]) -> None:
    client, keys = api
    response = client.post("/v1/grade/batch", headers=keys["client"],
                           files=[("files", (f"{i}.jpg", data)) for i, data in enumerate(files)])
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert len(response.json()["results"]) == len(files)


@FUZZ
@given(document=st.dictionaries(st.text(max_size=12), st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=200)), max_size=5))
def test_any_feedback_document_gets_a_4xx_or_is_recorded(api: tuple[TestClient, dict],
                                                         document: dict) -> None:
    client, keys = api
    response = client.post("/v1/feedback", headers=keys["expert"], json=document)
    assert response.status_code < 500, response.text

"""Drive the MLflow UI (3.17) in headless Chromium, as a reviewer does.

A model version is promoted when a reviewer approves it in the MLflow UI: on the version page
(Models -> card-grader -> Version N) they add the tags `approval=approved` and `approved_by`.
That path is the product's, not an API call, so the end-to-end tests walk it with clicks on the
real page: open the version, unfold "Tags", type each name and value into the tag form, press
"Add" and wait until the table shows the tag.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, Playwright, expect
from playwright.sync_api import Error as PlaywrightError

from components.serving.loopback import free_port, wait_until_up
from components.settings import stored_secret
from model_registry.access import AUTH_APP, server_auth_env

CHROMIUM = Path("/usr/bin/chromium")
# Closed network, root user: no sandbox, no GPU, and no background calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TIMEOUT_MS = 30_000
MLFLOW = Path(sys.executable).parent / "mlflow"


class MlflowUiError(AssertionError):
    """The MLflow page did not look as expected at one step of the reviewer's path."""


def launch_browser(playwright: Playwright) -> Browser:
    """Debian's headless Chromium (Playwright's own browser download is not used)."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `apt-get install -y chromium` "
                           "(`make setup` does it)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def _step(name: str, action: Callable[[], object]) -> None:
    try:
        action()
    except (PlaywrightError, AssertionError) as error:
        raise MlflowUiError(f"MLflow UI, step '{name}' failed: {error}") from error


def _tag_row(section: Locator, key: str, value: str) -> Locator:
    return (section.get_by_role("row")
            .filter(has=section.page.get_by_role("cell", name=key, exact=True))
            .filter(has=section.page.get_by_role("cell", name=value, exact=True)))


def set_version_tags_in_ui(page: Page, ui_url: str, model: str, version: int,
                           tags: dict[str, str], screenshot: Path | None = None) -> None:
    """Add `tags` to version `version` of registered model `model` through the UI at `ui_url`.

    Clicks what a person clicks: the "Tags" header (unfolded if folded), the "tag name" and
    "tag value" inputs, the "Add" button; then waits until the tags table shows every tag.
    With `screenshot`, saves a full-page PNG once the tags are visible.
    """
    page.set_default_timeout(TIMEOUT_MS)
    url = f"{ui_url.rstrip('/')}/#/models/{model}/versions/{version}"
    section = page.get_by_test_id("tags-section")
    header = section.get_by_role("button", name="Tags", exact=True)

    def open_version() -> None:
        page.goto(url)
        title = page.get_by_text(f"Version {version}", exact=True).first
        expect(title).to_be_visible(timeout=TIMEOUT_MS)  # not "Page Not Found"

    _step(f"open {url}", open_version)
    _step("find the Tags section", lambda: expect(header).to_be_visible(timeout=TIMEOUT_MS))
    if header.get_attribute("aria-expanded") != "true":
        _step("unfold the Tags section", header.click)
    name_input, value_input = section.get_by_label("tag name"), section.get_by_label("tag value")
    add = section.get_by_role("button", name="Add", exact=True)
    _step("find the tag form", lambda: expect(name_input).to_be_visible(timeout=TIMEOUT_MS))

    for key, value in tags.items():
        _step(f"type tag name {key!r}", lambda key=key: name_input.fill(key))
        _step(f"type tag value {value!r}", lambda value=value: value_input.fill(value))
        _step(f"press Add for {key!r}", add.click)
        _step(f"see tag {key}={value} in the table",
              lambda key=key, value=value: expect(_tag_row(section, key, value))
              .to_have_count(1, timeout=TIMEOUT_MS))
        # The UI empties the form once the tag is added; the next one starts from there.
        _step(f"see the form cleared after {key!r}",
              lambda: expect(name_input).to_have_value("", timeout=TIMEOUT_MS))

    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.mouse.move(0, 0)  # no hover highlight on the last row's buttons
        _step(f"save screenshot {screenshot}",
              lambda: page.screenshot(path=str(screenshot), full_page=True))


def admin_password(auth_folder: Path) -> str:
    """The MLflow admin's password of a server `mlflow_server` started with `auth_folder`."""
    return stored_secret(auth_folder / "admin.password")


@contextmanager
def mlflow_server(backend_uri: str, artifact_root: Path, log: Path,
                  auth_folder: Path | None = None) -> Iterator[str]:
    """`mlflow server` (the MLflow UI) on a free loopback port over `backend_uri`; its URL.
    With `auth_folder`, it runs the basic-auth app as `gradeline up` does (its secrets kept
    there). Stopped afterwards, whatever happened: SIGTERM to its process group, SIGKILL after
    5 s."""
    port = free_port()
    auth = [] if auth_folder is None else ["--app-name", AUTH_APP]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", backend_uri, "--default-artifact-root", str(artifact_root),
             "--workers", "1", *auth],
            # No background job runners (huey consumers): nothing here needs them, they slow
            # the start and outlive the server.
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                 **(server_auth_env(auth_folder, admin_password(auth_folder),
                                    stored_secret(auth_folder / "csrf.secret"))
                    if auth_folder else {})},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:  # up to ~45 s on a busy 2-core machine: table migrations, then the app's imports
            wait_until_up(f"{url}/health", lambda: server.poll() is None, timeout=90)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"{error}\n{log.read_text(errors='replace')[-3000:]}")
        yield url
    finally:
        for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            try:
                os.killpg(server.pid, sig)
                server.wait(timeout=wait_s)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue

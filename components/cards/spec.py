"""What a physical card is: geometry, centering, printing colours and defects, in millimetres.

`sample_card` draws one card from the factory's population; rendering and photographing it are
separate steps (`render.py`, `camera.py`), so the ground truth exists before any pixel does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from components.vision.rubric import DEFECT_ASPECTS, DEFECT_CLASSES, Grade, grade_card

CARD_WIDTH_MM = 63.0
CARD_HEIGHT_MM = 88.0
CORNER_RADIUS_MM = 3.0
# Left + right (and top + bottom) border widths; centering splits this between the two sides.
BORDER_TOTAL_MM = 8.0
FRAME_LINE_MM = 0.6
# Offsets beyond 90/10 would leave a border too thin to print.
MAX_CENTERING_SHARE = 90.0

SURFACE_DEFECTS = frozenset(kind for kind, aspect in DEFECT_ASPECTS.items() if aspect == "surface")
# A crease is never a light defect: it always costs at least five surface grades.
CREASE_MIN_SEVERITY = 0.55
# A defect drawn at all is visible: below this it would be invisible yet still labelled.
MIN_SEVERITY = 0.08

# Light border colours (BGR): a photographed card must stand out from a darker background.
BORDER_COLOURS: tuple[tuple[int, int, int], ...] = (
    (245, 245, 245),
    (225, 238, 246),
    (200, 200, 205),
    (140, 225, 245),
    (230, 215, 180),
    (205, 225, 205),
)


@dataclass(frozen=True)
class Defect:
    """One defect: its kind, severity 0..1 and where it sits on the card (mm, origin top-left).

    `points` is the defect's skeleton: a corner or edge anchor plus extent for wear, a polyline
    for scratches, creases and print lines, a centre for stains; `size` is width or radius in mm.
    """

    kind: str
    severity: float
    points: tuple[tuple[float, float], ...]
    size: float

    @property
    def class_id(self) -> int:
        return DEFECT_CLASSES.index(self.kind)


@dataclass(frozen=True)
class CardSpec:
    """One physical card with everything needed to draw it and to grade it."""

    item_id: str
    centering_lr: float  # left border share of left + right, percent
    centering_tb: float  # top border share of top + bottom, percent
    border_colour: tuple[int, int, int]
    art_seed: int
    defects: tuple[Defect, ...] = field(default_factory=tuple)

    @property
    def border_mm(self) -> tuple[float, float, float, float]:
        """Border widths (left, top, right, bottom) in mm."""
        left = BORDER_TOTAL_MM * self.centering_lr / 100.0
        top = BORDER_TOTAL_MM * self.centering_tb / 100.0
        return left, top, BORDER_TOTAL_MM - left, BORDER_TOTAL_MM - top

    def severity(self, kinds: frozenset[str] | set[str]) -> float:
        """Worst severity among defects of the given kinds (0 when there is none)."""
        return max((d.severity for d in self.defects if d.kind in kinds), default=0.0)

    def aspect_severities(self) -> dict[str, float]:
        """The worst severity of each defect aspect the rubric grades."""
        return {aspect: self.severity({k for k, a in DEFECT_ASPECTS.items() if a == aspect})
                for aspect in dict.fromkeys(DEFECT_ASPECTS.values())}

    def grade(self) -> Grade:
        """Apply the rubric to this card."""
        worst = self.aspect_severities()
        return grade_card(self.centering_lr, self.centering_tb, corner_severity=worst["corners"],
                          edge_severity=worst["edges"], surface_severity=worst["surface"])


def sample_centering_share(rng: np.random.Generator) -> float:
    """Most cards are cut near centre; a fifth come from a badly aligned sheet."""
    spread = 4.5 if rng.random() < 0.8 else 15.0
    limit = MAX_CENTERING_SHARE - 50.0
    offset = float(np.clip(rng.normal(0.0, spread), -limit, limit))
    return round(50.0 + offset, 2)


def _severity(rng: np.random.Generator, wear: float, low: float, high: float) -> float:
    """Severity from the card's wear, saturating smoothly below 1 (no pile-up at the cap)."""
    return max(MIN_SEVERITY, float(np.tanh(wear * rng.uniform(low, high))))


def _point_in_card(rng: np.random.Generator, margin: float) -> tuple[float, float]:
    return (
        float(rng.uniform(margin, CARD_WIDTH_MM - margin)),
        float(rng.uniform(margin, CARD_HEIGHT_MM - margin)),
    )


def _sample_corner_wear(rng: np.random.Generator, corner: int, wear: float) -> Defect:
    severity = _severity(rng, wear, 0.4, 1.4)
    # Centred on the rounded corner's arc, not the square corner outside it, so even light
    # wear lies on the card.
    inset = CORNER_RADIUS_MM * (1 - np.sqrt(0.5))
    x = inset if corner in (0, 3) else CARD_WIDTH_MM - inset
    y = inset if corner in (0, 1) else CARD_HEIGHT_MM - inset
    return Defect("corner_wear", severity, ((float(x), float(y)),), size=0.8 + 2.6 * severity)


def _sample_edge_whitening(rng: np.random.Generator, wear: float) -> Defect:
    severity = _severity(rng, wear, 0.4, 1.4)
    length = 4.0 + 26.0 * severity
    side = int(rng.integers(4))  # 0 top, 1 right, 2 bottom, 3 left
    along = CARD_WIDTH_MM if side in (0, 2) else CARD_HEIGHT_MM
    # The whole strip fits on the straight side: a strip cut short would show less wear than
    # its severity says.
    start = float(rng.uniform(CORNER_RADIUS_MM + 1, along - CORNER_RADIUS_MM - 1 - length))
    end = start + length
    ends = {
        0: ((start, 0.0), (end, 0.0)),
        1: ((CARD_WIDTH_MM, start), (CARD_WIDTH_MM, end)),
        2: ((start, CARD_HEIGHT_MM), (end, CARD_HEIGHT_MM)),
        3: ((0.0, start), (0.0, end)),
    }[side]
    return Defect("edge_whitening", severity, ends, size=0.3 + 0.9 * severity)


def _sample_scratch(rng: np.random.Generator, wear: float) -> Defect:
    severity = _severity(rng, wear, 0.3, 1.2)
    length = 6.0 + 30.0 * severity
    angle = rng.uniform(0, np.pi)
    bend = rng.normal(0, 0.15)
    offsets = np.array([(t * length * np.cos(angle + bend * t),
                         t * length * np.sin(angle + bend * t)) for t in (0.0, 0.5, 1.0)])
    # The start is drawn where the whole scratch lies on the card: one clipped at the edge
    # would be shorter than its severity says.
    margin = 2.0
    low = margin - offsets.min(axis=0)
    high = np.array([CARD_WIDTH_MM, CARD_HEIGHT_MM]) - margin - offsets.max(axis=0)
    start = rng.uniform(low, high)
    points = tuple((float(x), float(y)) for x, y in start + offsets)
    return Defect("surface_scratch", severity, points, size=0.12 + 0.25 * severity)


def _sample_crease(rng: np.random.Generator) -> Defect:
    severity = float(rng.uniform(CREASE_MIN_SEVERITY, 1.0))
    if rng.random() < 0.5:  # across the card
        y0, y1 = rng.uniform(10, CARD_HEIGHT_MM - 10, size=2)
        ends = ((1.0, float(y0)), (CARD_WIDTH_MM - 1.0, float(y1)))
    else:
        x0, x1 = rng.uniform(8, CARD_WIDTH_MM - 8, size=2)
        ends = ((float(x0), 1.0), (float(x1), CARD_HEIGHT_MM - 1.0))
    # A worse crease runs further: from one edge across `severity` of the card.
    start, end = (np.array(e) for e in (ends if rng.random() < 0.5 else ends[::-1]))
    reach = start + severity * (end - start)
    points = ((float(start[0]), float(start[1])), (float(reach[0]), float(reach[1])))
    return Defect("crease", severity, points, size=0.3 + 0.3 * severity)


def _sample_stain(rng: np.random.Generator, wear: float) -> Defect:
    severity = _severity(rng, wear, 0.5, 1.4)
    return Defect("stain", severity, (_point_in_card(rng, 8.0),), size=1.5 + 5.5 * severity)


def _sample_print_line(rng: np.random.Generator) -> Defect:
    severity = float(rng.uniform(0.1, 0.6))
    inset = BORDER_TOTAL_MM / 2 + 1.5
    if rng.random() < 0.7:
        x = float(rng.uniform(inset + 2, CARD_WIDTH_MM - inset - 2))
        ends = ((x, inset), (x, CARD_HEIGHT_MM - inset))
    else:
        y = float(rng.uniform(inset + 2, CARD_HEIGHT_MM - inset - 2))
        ends = ((inset, y), (CARD_WIDTH_MM - inset, y))
    return Defect("print_line", severity, ends, size=0.15 + 0.2 * severity)


def sample_defects(rng: np.random.Generator) -> tuple[Defect, ...]:
    """Draw a card's defects from one latent wear level, so worn cards are worn all over."""
    wear = float(rng.beta(1.1, 2.0))
    defects: list[Defect] = []
    for corner in range(4):
        if rng.random() < 0.85 * wear:
            defects.append(_sample_corner_wear(rng, corner, wear))
    for _ in range(2):
        if rng.random() < 0.7 * wear:
            defects.append(_sample_edge_whitening(rng, wear))
    for _ in range(min(3, int(rng.poisson(1.2 * wear)))):
        defects.append(_sample_scratch(rng, wear))
    if rng.random() < 0.04 + 0.2 * wear**2:
        defects.append(_sample_crease(rng))
    if rng.random() < 0.04 + 0.25 * wear:
        defects.append(_sample_stain(rng, wear))
    if rng.random() < 0.07:
        defects.append(_sample_print_line(rng))
    return tuple(defects)


def sample_card(rng: np.random.Generator, item_id: str) -> CardSpec:
    """Draw one card of the factory's population."""
    return CardSpec(
        item_id=item_id,
        centering_lr=sample_centering_share(rng),
        centering_tb=sample_centering_share(rng),
        border_colour=BORDER_COLOURS[int(rng.integers(len(BORDER_COLOURS)))],
        art_seed=int(rng.integers(2**31)),
        defects=sample_defects(rng),
    )

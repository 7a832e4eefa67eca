"""``eo-mmcl report``: Markdown and self-contained HTML from a probe run."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from eo_mmcl.errors import SourceError
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.probe.embeddings import RANDOM_INIT
from eo_mmcl.probe.instrument import instrument_table
from eo_mmcl.probe.run import (
    CHIPS_FILE,
    INSTRUMENT_TABLE,
    LABELS_FILE,
    META_FILE,
    PREDICTIONS_FILE,
    PROBE_TABLE,
    SEGMENTATION_FILE,
)
from eo_mmcl.probe.tasks import GROUP_NAMES
from eo_mmcl.report import plots
from eo_mmcl.report.findings import (
    comparison_sentences,
    depth_findings,
    findings,
    instrument_findings,
)
from eo_mmcl.report.formatting import (
    best_choice_table,
    format_instrument,
    format_main,
    to_markdown,
)
from eo_mmcl.report.map import leaflet_assets, map_layers
from eo_mmcl.report.tables import depth_table, main_table, objective_order

REPORT_TITLE = "eo_mmcl report"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
FIGURES = "figures"


@dataclass
class Block:
    """One piece of the report, rendered to Markdown and to HTML alike.

    Args:
        kind: ``h1``, ``h2``, ``p``, ``list``, ``table``, ``image`` or ``map``.
        content: Text, list of strings, a DataFrame of strings, an image path, or the map's
            layers (HTML only; the Markdown points to the HTML page).
        caption: Image caption.
    """

    kind: str
    content: Any
    caption: str = ""


def _inline(text: str) -> Markup:
    """Markdown ``**bold**`` and `` `code` `` of generated text, as escaped HTML."""
    escaped = str(escape(text))
    for mark, tag in (("**", "b"), ("`", "code")):
        parts = escaped.split(mark)
        escaped = "".join(
            part if i % 2 == 0 else f"<{tag}>{part}</{tag}>" for i, part in enumerate(parts)
        )
    return Markup(escaped)


def _data_uri(path: str | Path) -> str:
    # Images are embedded as data URIs: the HTML file is self-contained (mail it, open it
    # offline).
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _templates(root: Path) -> Environment:
    """The report's jinja2 templates: one data model (the blocks), HTML and Markdown views."""
    env = Environment(
        loader=PackageLoader("eo_mmcl.report", "templates"),
        autoescape=select_autoescape(["html.j2"]),
        keep_trailing_newline=True,
        undefined=StrictUndefined,
    )
    env.filters.update(
        inline=_inline,
        data_uri=_data_uri,
        markdown_table=to_markdown,
        relative_to_report=lambda p: Path(p).relative_to(root).as_posix(),
    )
    return env


def _render(blocks: list[Block], root: Path, template: str) -> str:
    leaflet_js, leaflet_css = leaflet_assets() if any(b.kind == "map" for b in blocks) else ("", "")
    text = (
        _templates(root)
        .get_template(template)
        .render(blocks=blocks, title=REPORT_TITLE, leaflet_js=leaflet_js, leaflet_css=leaflet_css)
    )
    return text.rstrip("\n") + "\n"


def _settings(meta: dict[str, Any], table: pd.DataFrame) -> list[str]:
    config = meta.get("config", {})
    items = [
        f"chip store `{meta.get('chips_dir')}`: chips per split "
        + ", ".join(f"{k} {v}" for k, v in meta.get("splits", {}).items())
        + f"; chip size {meta.get('chip_size')} px",
        "tasks: "
        + ", ".join(
            f"`{name}` ({spec['group']}, {spec['num_classes']} classes)"
            for name, spec in meta.get("tasks", {}).items()
        ),
        f"training seeds: {meta.get('train_seeds', [0])}; probe seeds per training seed: "
        f"{config.get('seeds')} (a probe seed draws the probes' train subsample of "
        f"{config.get('train_fraction')} of the train chips); "
        f"probes: {', '.join(config.get('probes', []))}",
        f"tile settings: `{json.dumps(meta.get('tile_config', {}), sort_keys=True)}`",
    ]
    for ckpt in meta.get("checkpoints", []):
        hp = ckpt.get("hparams", {})
        items.append(
            f"`{ckpt['objective']}` (training seed {ckpt.get('train_seed', 0)}): "
            f"`{ckpt['path']}`, epoch {ckpt['epoch']}, "
            f"{ckpt['global_step']} steps, backbone {hp.get('backbone')}"
            + (f" `{json.dumps(hp['backbone_kwargs'])}`" if hp.get("backbone_kwargs") else "")
            + (f", output stride {hp['output_stride']}" if hp.get("output_stride") else "")
            + f", lr {hp.get('lr')}"
        )
    for scene in meta.get("simulator", []):
        knobs = scene.get("config", {})
        keys = (
            "size", "seed", "parcel_size", "unique_classes", "optical_unique_strength",
            "sar_unique_strength_db", "cloud_fraction", "change_fraction",
            "coregistration_shift_m", "enl", "optical_noise", "time_gap_days",
        )  # fmt: skip
        knob_text = ", ".join(f"{k}={knobs[k]}" for k in keys if k in knobs)
        items.append(f"simulator scene `{scene['scene']}`: {knob_text}")
    notes = meta.get("notes", {})
    items += [f"{k}: {v}" for k, v in notes.items()]
    items.append(f"rows in the probe table: {len(table)}")
    return items


def build_report(
    probe_dir: str | Path, out_dir: str | Path, embed_dirs: Sequence[str | Path] = ()
) -> Path:
    """Write ``report.md``, ``report.html`` and ``figures/`` from a probe run.

    Args:
        probe_dir: Output of ``eo-mmcl probe``.
        out_dir: Report folder.
        embed_dirs: ``eo-mmcl embed`` folders whose PCA previews the map shows as layers.

    Returns:
        The path of ``report.html``.

    Raises:
        SourceError: If the probe run is incomplete.
    """
    src, out = Path(probe_dir), Path(out_dir)
    if not (src / PROBE_TABLE).exists():
        raise SourceError(f"{src}: no {PROBE_TABLE}; run `eo-mmcl probe` first")
    table = pd.read_parquet(src / PROBE_TABLE)
    meta = json.loads((src / META_FILE).read_text()) if (src / META_FILE).exists() else {}
    instrument = (
        pd.read_parquet(src / INSTRUMENT_TABLE)
        if (src / INSTRUMENT_TABLE).exists()
        else instrument_table(table)
    )
    main = main_table(table, instrument)
    depths = depth_table(table, instrument)
    per_depth = [
        s
        for d in ("backbone", "projection")
        for s in comparison_sentences(main_table(table, instrument, depth=d), f" in the {d}")
    ]
    seeds = meta.get("train_seeds") or sorted(set(table.get("train_seed", pd.Series([0]))))
    figures = out / FIGURES
    blocks: list[Block] = [
        Block("h1", "What survives in the embeddings"),
        Block("h2", "Instrument"),
        Block(
            "p",
            "Before any comparison: per task, the chance level, the ceiling (the better of the "
            "`supervised` oracle and band statistics, each at its probe chosen on validation), "
            "the truth ceiling (noise-free chips of the same parcels), the best score of the "
            "sensor that must not see the task, and the untrained network's survival at the "
            "cell the main table shows. Readable: the ceiling covers at least 0.6 (S: 0.5) of "
            "the range above chance and the wrong sensor is within 0.05 of chance. Separable: "
            "the untrained network keeps at most 0.7. No claim is made on a task that is not "
            "readable, and no ranking on one that is not separable.",
        ),
        Block("table", format_instrument(instrument)),
        Block("list", instrument_findings(instrument)),
        Block(
            "p",
            "Survival per task group = (score - chance) / (ceiling - chance): 1 is the "
            "ceiling, 0 chance. A group's column reads its tasks only through the readings "
            "(task and metric) with the instrument's best verdict there (readable and "
            "separable, else readable), a rule fixed in advance that rests on the references "
            "alone; among those, for each objective and group the cell (task, metric, probe, "
            "depth) with the best mean validation survival is shown (never chosen on test), "
            "as mean ± "
            f"standard deviation over {len(seeds)} training seeds (seeds {seeds}; probe seeds "
            "are averaged inside each). The best trained objective of each readable, separable "
            "column is in bold. Groups: "
            + ", ".join(f"{g} {GROUP_NAMES[g]}" for g in main.groups)
            + ". Random-init rows are the same networks untrained (the floor, weights drawn "
            "from each training seed); 'vs random' is survival minus the floor's. Differences "
            "between objectives are paired by training seed and claimed only beyond two "
            "standard errors.",
        ),
        Block("h2", "Main table"),
        Block("table", format_main(main)),
        Block("p", "Where each cell comes from (task / probe / depth, chosen on validation):"),
        Block("table", best_choice_table(main)),
        Block("h2", "Findings"),
        Block("list", findings(main) + per_depth + depth_findings(table, instrument)),
        Block("h2", "Backbone and projection space"),
        Block(
            "p",
            "Survival per group at each depth (each depth's cell chosen on validation): pooled "
            "backbone features, and the projection (the space the loss aligns).",
        ),
        Block("table", depths.map(lambda v: f"{v:.2f}" if np.isfinite(v) else "n/a")),
    ]
    chips_dir = Path(meta["chips_dir"]) if meta.get("chips_dir") else None
    layers = map_layers(chips_dir, [Path(d) for d in embed_dirs])
    if layers is not None:
        blocks += [
            Block("h2", "Map"),
            Block(
                "p",
                "Scene footprints, the chips of each split and the PCA false-colour previews "
                "of the exported embeddings, as layers (EPSG:4326; no base map, so that the "
                "page works offline).",
            ),
            Block("map", layers),
        ]
    bars = plots.survival_bars(main, figures / "survival.png")
    blocks += [Block("h2", "Survival per group"), Block("image", bars, "survival per group")]
    blocks += _per_task_blocks(src, table, figures)
    blocks += [Block("h2", "Settings"), Block("list", _settings(meta, table))]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(out / REPORT_MD) as tmp:
        tmp.write_text(_render(blocks, out, "report.md.j2"))
    with atomic_output(out / REPORT_HTML) as tmp:
        tmp.write_text(_render(blocks, out, "report.html.j2"))
    return out / REPORT_HTML


def score_table(table: pd.DataFrame) -> pd.DataFrame:
    """Test scores per task, probe and depth (rows) and objective (columns), as text.

    Each cell is ``mean ± std (n=N)`` over the N training seeds, the probe seeds of a training
    seed averaged first: the error bar comes from what varies most.

    Args:
        table: The tidy probe table.

    Returns:
        The table of strings.
    """
    order = objective_order(list(dict.fromkeys(table["objective"])))
    joint = table[table["sensor"] == "joint"] if "sensor" in table else table
    keys = ["task", "probe", "depth", "objective"]
    per_seed = joint.groupby(keys + (["train_seed"] if "train_seed" in joint else []))[
        "score"
    ].mean()
    scores = per_seed.groupby(level=keys).agg(["mean", "std", "count"])
    wide = (
        scores.apply(
            lambda r: (
                f"{r['mean']:.3f} ± {0 if np.isnan(r['std']) else r['std']:.3f} "
                f"(n={int(r['count'])})"
            ),
            axis=1,
        )
        .unstack("objective")
        .reindex(columns=[o for o in order if o in set(table["objective"])])
        .fillna("")
    )
    wide.index = [" / ".join(map(str, i)) for i in wide.index]
    wide.index.name = "task / probe / depth"
    return wide


def _per_task_blocks(src: Path, table: pd.DataFrame, figures: Path) -> list[Block]:
    """Score tables per task, confusion matrices, PCA previews and error maps."""
    blocks: list[Block] = [
        Block("h2", "Scores per task"),
        Block(
            "p",
            "Test scores, mean ± standard deviation over training seeds (probe seeds averaged "
            "inside each); n is the number of training seeds.",
        ),
    ]
    order = objective_order(list(dict.fromkeys(table["objective"])))
    blocks.append(Block("table", score_table(table)))
    predictions = (
        pd.read_parquet(src / PREDICTIONS_FILE)
        if (src / PREDICTIONS_FILE).exists()
        else pd.DataFrame()
    )
    if not predictions.empty:
        blocks.append(Block("h2", "Confusion matrices (linear probe, backbone depth, seed 0)"))
        meta = json.loads((src / META_FILE).read_text()) if (src / META_FILE).exists() else {}
        tasks = meta.get("tasks", {})
        for task in dict.fromkeys(predictions["task"]):
            spec = tasks.get(task, {})
            path = plots.confusion_matrices(
                predictions, task, "linear", "backbone", figures / f"confusion_{task}.png",
                num_classes=spec.get("num_classes"), class_names=spec.get("class_names"),
            )  # fmt: skip
            if path is not None:
                blocks.append(Block("image", path, f"confusion matrices of {task}"))
    chips = pd.read_parquet(src / CHIPS_FILE) if (src / CHIPS_FILE).exists() else None
    if chips is None or "row_off" not in chips:
        return blocks
    labels = np.load(src / LABELS_FILE) if (src / LABELS_FILE).exists() else None
    tasks_with_maps = [f for f in labels.files if f != "store_index"] if labels else []
    chip_size = int(labels[tasks_with_maps[0]].shape[-1]) if labels and tasks_with_maps else 0
    embeddings = {}
    for objective in order:
        path = src / "embeddings" / f"{objective}__backbone.parquet"
        if path.exists():
            emb = pd.read_parquet(path, columns=["store_index", "embedding"])
            position = dict(zip(emb["store_index"], emb["embedding"], strict=True))
            embeddings[objective] = np.stack([position[s] for s in chips["store_index"]])
    if embeddings and chip_size:
        path = plots.pca_previews(chips, embeddings, chip_size, figures / "pca.png")
        if path is not None:
            blocks += [Block("h2", "Maps"), Block("image", path, "embedding PCA previews")]
    segmentation = np.load(src / SEGMENTATION_FILE) if (src / SEGMENTATION_FILE).exists() else None
    if segmentation is None or labels is None:
        return blocks
    test_index = segmentation["test_store_index"]
    position = {int(s): i for i, s in enumerate(chips["store_index"])}
    test_rows = np.array([position[int(s)] for s in test_index], dtype=np.int64)
    tasks = dict(zip(table["task"], table["group"], strict=False))
    for task in [t for t, g in tasks.items() if g in ("U1", "U2")]:
        maps = {
            o: segmentation[f"{o}|{task}"]
            for o in order
            if f"{o}|{task}" in segmentation.files and not o.startswith(f"{RANDOM_INIT}:")
        }
        path = plots.error_maps(
            chips, labels[task], maps, test_rows, chip_size, task, figures / f"errors_{task}.png"
        )
        if path is not None:
            blocks.append(Block("image", path, f"{task}: truth, prediction and error"))
    return blocks

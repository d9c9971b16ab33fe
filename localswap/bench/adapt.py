"""`bench --only adapt`: a trained model on new target people it never saw, three ways,
judged by `evaluate` (issue 29's table, which sets the adapt budget in train/budget.py).

- as is: the trained model renders the new person with no training (a quick swap);
- adapted: a new model starts from it (`swap --adapt`: its source faces reused, only the new
  target extracted) and trains for each budget in minutes;
- fresh: a new model of the same two people trained from scratch for the longest budget.

The trained model is Basic on BASE (trained once and kept in the cache: 15-20 minutes on 2
CPU cores). Every row says its wall time, end to end (extraction, training, render).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from localswap.bench.corpus import clip_path
from localswap.bench.quality import BAR, cache_dir, contact_sheet, meets_bar

BASE = ("vlogger", "presenter")      # the trained model's source and target (check4 pair)
# New target people: a woman in glasses (the erased-glasses case), an older woman on a
# webcam, a bald man in a mall, a young blonde woman. None was used to choose the budget's
# shape before this table.
TARGETS = ("glasses_selfie", "older_woman", "bald", "blonde")
BUDGETS = {"cpu": (1.0, 2.0, 4.0), "cuda": (0.5, 1.0, 2.0)}
KEYS = (*BAR, "missing_faces", "red_lips", "red_eyes", "glasses_kept")


def base_model(device: str, progress=print) -> Path:
    """The trained model (Basic on BASE), trained here the first time."""
    from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
    from localswap.swap.pipeline import swap
    from localswap.workspace import Workspace
    ws = Workspace(cache_dir() / "adapt-base" / device)
    name = f"{BASE[0]}-on-{BASE[1]}"
    model = ws.path("models", name)
    if not (model / "manifest.json").is_file() or not (
            ws.root / "facesets" / f"{name}-source" / "faceset.json").is_file():
        shutil.rmtree(ws.root, ignore_errors=True)
        progress(f"bench: adapt: training the base model {name} (Basic) ...")
        swap([clip_path(BASE[0])], clip_path(BASE[1]), ws.root / "outputs" / f"{name}.mp4",
             ws, model=name, train=TrainSettings(device=device),
             convert=ConvertSettings(device=device), extract=ExtractSettings(device=device),
             report=lambda line: None)
    return model


def _judge(source: Path, target: Path, out: Path, sheet: Path) -> dict:
    from localswap.evaluate import evaluate
    scores = evaluate([source], target, out, max_frames=120).to_dict()
    contact_sheet(target, out, sheet)
    row = {k: scores.get(k) for k in KEYS}
    row["meets_bar"] = meets_bar(scores)
    return row


def section_adapt(ctx: dict) -> dict:
    from localswap.convert.render import convert
    from localswap.swap.fit import check
    from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
    from localswap.swap.pipeline import swap
    from localswap.workspace import Workspace
    device = ctx["device"].type
    budgets = tuple(ctx.get("budgets") or BUDGETS[device])
    out_dir = Path(ctx.get("out_dir") or cache_dir() / "results") / "adapt"
    out_dir.mkdir(parents=True, exist_ok=True)
    model = base_model(device)
    source = clip_path(BASE[0])
    rows = []
    for name in ctx.get("targets") or TARGETS:
        target = clip_path(name)
        row: dict = {"target": name}
        fit = check(model, target)
        row["fit"] = {"verdict": fit.verdict, "distance": fit.distance}
        t = time.perf_counter()
        out = out_dir / f"{name}-as-is.mp4"
        convert(target, model, out, ConvertSettings(device=device))
        row["as_is"] = {**_judge(source, target, out, out_dir / f"{name}-as-is.png"),
                        "wall_s": round(time.perf_counter() - t, 1)}
        runs = [(f"adapt_{m:g}", m, True) for m in budgets] + \
            [(f"fresh_{budgets[-1]:g}", budgets[-1], False)]
        for label, minutes, adapted in runs:
            work = Path(ctx["tmp"]) / f"adapt-{name}-{label}"
            shutil.rmtree(work, ignore_errors=True)
            out = out_dir / f"{name}-{label}.mp4"
            t = time.perf_counter()
            job = swap([] if adapted else [source], target, out, Workspace(work),
                       train=TrainSettings(max_minutes=minutes, device=device,
                                           init_from=str(model) if adapted else ""),
                       convert=ConvertSettings(device=device),
                       extract=ExtractSettings(device=device), report=lambda line: None)
            wall = time.perf_counter() - t
            trained = job.results["train"]
            row[label] = {**_judge(source, target, out, out_dir / f"{name}-{label}.png"),
                          "iterations": trained.iteration, "wall_s": round(wall, 1),
                          "disturbed": trained.disturbed}
            shutil.rmtree(work, ignore_errors=True)
        rows.append(row)
    return {"base": f"{BASE[0]}-on-{BASE[1]}", "budgets": list(budgets), "rows": rows,
            "table": table(rows)}


def table(rows: list[dict]) -> str:
    """Markdown: one line per target and way (as is, adapted per budget, fresh)."""
    head = ("| target | way | wall | closer | distance | eyes | mouth | stability | red lips "
            "| red eyes | glasses kept | bar |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]

    def cell(v, fmt="{:.2f}"):
        return fmt.format(v) if isinstance(v, (int, float)) else "–"
    for row in rows:
        for way in [k for k in row if k not in ("target", "fit")]:
            r = row[way]
            wall = f"{r['wall_s'] / 60:.1f} min" if r.get("wall_s") else "–"
            lines.append(
                f"| {row['target']} | {way.replace('_', ' ')} | {wall} | "
                f"{cell(r.get('closer_to_source'), '{:.0%}')} | "
                f"{cell(r.get('distance_to_source'))} | {cell(r.get('eye_correlation'))} | "
                f"{cell(r.get('mouth_correlation'))} | {cell(r.get('stability'))} | "
                f"{cell(r.get('red_lips'), '{:.1f}')} | {cell(r.get('red_eyes'), '{:.1f}')} | "
                f"{cell(r.get('glasses_kept'), '{:.0%}')} | "
                f"{'met' if r.get('meets_bar') else 'no'} |")
    return "\n".join(lines)

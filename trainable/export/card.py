"""The model card: `model_card.json` (for machines) and `model_card.md` (for people), from
one dict, so the two never disagree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainable.files import atomic


def write_card(card: dict[str, Any], md_path: Path, json_path: Path) -> None:
    atomic.write_text(json_path, json.dumps(card, indent=2) + "\n")
    atomic.write_text(md_path, render(card))


def render(card: dict[str, Any]) -> str:
    i, p = card["input"], card["parity"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"{len(card['classes'])}-class image classifier, {card['model']}. Exported from "
        f"{card['origin']['source']} ({card['created_at']}).",
        "",
        "## Input and output",
        "",
        f"- input `{i['name']}`: {i['dtype']}, {i['layout']} (batch, height, width, "
        f"{i['channels']}), {i['color']}; any batch size; {i['resize']}",
        f"- output `{card['output']['name']}`: float32 (batch, {len(card['classes'])}), "
        "softmax probabilities in the class order below",
        f"- {i['preprocessing']}",
        "",
        "Classes in output order: " + ", ".join(f"{k}: {c}" for k, c in enumerate(card["classes"])),
        "",
        *_test_section(card),
        "## Parity with PyTorch",
        "",
        "| runtime | top-1 agreement | largest probability difference | accuracy |",
        "|---|---|---|---|",
    ]
    for name in ("onnx", "torchscript"):
        if name in p:
            lines.append(
                f"| {name} | {p[name]['top1_agreement']:.4%} | {p[name]['max_prob_diff']:.2e} | "
                f"{p['accuracy'][name]:.2%} |"
            )
    lat = card.get("latency")
    if lat:
        lines += [
            "",
            f"## Latency on the exporting machine ({card['machine']}, {lat['threads']} threads)",
            "",
            "| runtime / batch | ms per image |",
            "|---|---|",
            *(f"| {k} | {v:.3f} |" for k, v in lat["ms_per_image"].items()),
        ]
    o = card["origin"]
    lines += [
        "",
        "## Where it came from",
        "",
        f"- data: {card['data'] or 'provenance not recorded'}",
        f"- produced by: {o['produced_by']}",
        f"- trainer config: {o['config_file']} (seed {card['config']['seed']}, "
        f"{card['config']['epochs']} epochs)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in card["versions"].items()),
        "",
    ]
    return "\n".join(lines)


def _test_section(card: dict[str, Any]) -> list[str]:
    t, p = card["test"], card["parity"]
    exported = f"this exported model (one view): {p['accuracy']['pytorch']:.2%}"
    if t is None:  # a trainer run without --test: the parity check's pass is the only one
        return [
            "## Test metrics",
            "",
            f"On the test split ({p['images']:,} images): {exported}. The run was not "
            "evaluated as trained (`train --test`), so there are no per-class metrics.",
            "",
        ]
    lines = [
        "## Test metrics",
        "",
        f"On the test split ({p['images']:,} images):",
        "",
        f"- accuracy as trained and evaluated (test-time augmentation: {t['tta']}): "
        f"{t['accuracy']:.2%}; balanced {t['balanced_accuracy']:.2%}; macro-F1 "
        f"{t['macro_f1']:.4f}",
        f"- {exported}",
        "",
        "| class | accuracy | precision | recall | F1 | support |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in t["per_class"].items():
        lines.append(
            f"| {name} | {m['accuracy']:.2%} | {m['precision']:.2%} | {m['recall']:.2%} | "
            f"{m['f1']:.4f} | {m['support']} |"
        )
    return [*lines, ""]

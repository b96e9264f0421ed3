"""`publish`: the folder a lab uploads as is to the Hugging Face Hub or Zenodo.

Three files: the verified ``.zarr.zip`` (``export``), a dataset card ``README.md`` (YAML front matter
the Hub reads: licence, task, size; then what the store is and how to check and use it) and
``SHA256SUMS`` (``sha256sum -c SHA256SUMS`` checks the download). The card restates what the store's
attrs say, so a reader can judge the release before downloading it; the store stays the truth.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from .describe import describe
from .format import open_store
from .nodes import attrs_section
from .ops import export

SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
)


def size_category(n_clips: int) -> str:
    for limit, name in SIZE_CATEGORIES:
        if n_clips < limit:
            return name
    return "10M<n<100M"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _front_matter(info: dict, licence: str, title: str) -> str:
    meta = {
        "license": licence,
        "pretty_name": title,
        "task_categories": ["audio-classification"],
        "size_categories": [size_category(int(info["clips"]))],
        "tags": ["knowledge-distillation", "teacher-logits", "zarr", "cmkd-logits"],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def dataset_card(info: dict, attrs: dict, zip_name: str, licence: str, repo: str, title: str) -> str:
    teacher, vocabulary = attrs.get("teacher", {}), attrs.get("vocabulary", {})
    manifest = attrs.get("manifest", {})
    url = f"hf://datasets/{repo}/{zip_name}"
    digest = info["digest"]
    lines = [
        _front_matter(info, licence, title),
        f"# {title}",
        "",
        f"Teacher logits in the `cmkd-logits` {info['version']} format (a Zarr v3 store, zipped): one row of "
        f"pre-activation logits per clip of `{manifest.get('name')}`, written once by a teacher so students can "
        "be distilled from them without running it (cmkd-pipeline, stage one).",
        "",
        "| | |",
        "|---|---|",
        f"| teacher | `{teacher.get('model')}` |",
        f"| teacher checkpoint sha256 | `{json.dumps(teacher.get('checkpoint_sha256'))}` |",
        f"| activation | {attrs.get('activation')} |",
        f"| classes | {len(vocabulary.get('mids', []))} (vocabulary sha256 `{vocabulary.get('sha256')}`) |",
        f"| manifest | `{manifest.get('name')}`: "
        + ", ".join(f"{k} `{v}`" for k, v in (manifest.get("sha256") or {}).items())
        + " |",
        f"| clips | {info['clips']}, {info['fingerprints']} with audio fingerprints |",
        f"| logits | {info['logits']['mode']}, {info['logits']['dtype']}; views per clip: {info['views']['count']} |",
        f"| failures | {info['failures']['count']} clips whose audio could not be read (rows marked not valid) |",
        f"| store digest | `{digest}` |",
        "",
        "**Licence.** The logits are computed from the dataset's audio; the licence above is the one the "
        "publisher states for this release. Check the audio's own licence before redistributing anything "
        "derived from it.",
        "",
        "## Coverage",
        "",
        "| split | valid / clips |",
        "|---|---|",
        *(f"| {split} | {c['valid']} / {c['clips']} |" for split, c in info["splits"].items()),
        "",
        "## Front end the teacher heard",
        "",
        "```json",
        json.dumps(attrs.get("front_end"), indent=2, sort_keys=True),
        "```",
        "",
        "## Check the download, then train from it",
        "",
        "```",
        "sha256sum -c SHA256SUMS",
        f"python -m pipeline.store verify {zip_name} --digest {digest}",
        f"make verify LOGITS={url} DIGEST={digest}",
        f"make student LOGITS={url} DIGEST={digest}",
        "```",
        "",
        "`verify` re-hashes every chunk and compares the store digest with the one published here (check it "
        "against an independent copy of this card: a digest inside the download proves nothing against "
        "whoever can change the download). Training matches the store's rows to your clips by `clip_id` and "
        "audio fingerprint (cmkd-pipeline, docs/sharing.md). Without the project: zarr-python, TensorStore "
        'and xarray read the store (docs/store-format.md, "Other readers").',
        "",
        "## Vocabulary (class index, mid, name), in the order of the logits",
        "",
        "| index | mid | name |",
        "|---|---|---|",
        *(
            f"| {i} | `{mid}` | {name} |"
            for i, (mid, name) in enumerate(zip(vocabulary.get("mids", []), vocabulary.get("names", [])))
        ),
        "",
    ]
    return "\n".join(lines)


def publish(location, folder, licence: str = "other", repo: str = "<org>/<name>", title: str | None = None) -> dict:
    """Write <folder>/<name>.zarr.zip, README.md and SHA256SUMS; returns {files, digest}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(str(location).rstrip("/")).name.removesuffix(".zip").removesuffix(".zarr") or "store"
    zip_path = folder / f"{stem}.zarr.zip"
    digest = export(location, zip_path)  # verifies the store first; the zip reproduces the digest
    info = describe(zip_path)
    group, _ = open_store(zip_path)
    attrs = group.attrs.asdict()
    teacher, manifest = attrs_section(attrs, "teacher", zip_path), attrs_section(attrs, "manifest", zip_path)
    title = title or f"{teacher.get('model')} logits on {manifest.get('name')}"
    card = folder / "README.md"
    card.write_text(dataset_card(info, attrs, zip_path.name, licence, repo, title), encoding="utf-8")
    sums = folder / "SHA256SUMS"
    sums.write_text("".join(f"{file_sha256(p)}  {p.name}\n" for p in (zip_path, card)), encoding="utf-8")
    return {"files": [str(zip_path), str(card), str(sums)], "digest": digest}

"""Reading back a review that `diff` or `summarize` wrote with `--format json`.

The document is checked against schemas/umami-ops-preview-review.v1.schema.json and rebuilt into
the `Review` the renderers take, so `comment` renders what the other subcommands rendered, from
the files a workflow passes between its jobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ops.core import documents
from ops.preview.model import Finding, PropertyChange, ResourceChange, Review
from ops.preview.render import JSON_FORMAT, JSON_VERSION

KIND = documents.DocumentType(JSON_FORMAT, (JSON_VERSION,), "review")


def _property(record: dict[str, Any]) -> PropertyChange:
    return PropertyChange(path=record["path"], kind=record["kind"], old=record["old"], new=record["new"],
                          forces_replacement=record["forcesReplacement"])


def _change(record: dict[str, Any]) -> ResourceChange:
    return ResourceChange(urn=record["urn"], type=record["type"], name=record["name"], action=record["action"],
                          old_protect=record["oldProtect"], new_protect=record["newProtect"],
                          properties=[_property(p) for p in record["properties"]],
                          replace_keys=list(record["replaceKeys"]))


def review_from_document(document: dict[str, Any]) -> Review:
    """The `Review` a JSON review describes (unchanged resources are not in it, so none are counted)."""
    return Review(
        title=document["title"],
        source=document["source"],
        changes=[_change(c) for c in document["changes"]],
        findings=[Finding(severity=f["severity"], rule=f["rule"], urn=f["urn"], resource=f["resource"],
                          type=f["type"], title=f["title"], detail=f["detail"]) for f in document["findings"]],
        config_changes=[_property(c) for c in document["config"]],
        notes=list(document["notes"]),
    )


def load_review(path: str | Path) -> Review:
    """The review in `path`; a file that is not one is a one-line OpsError naming it."""
    document, _ = documents.load(path, KIND)
    return review_from_document(document)

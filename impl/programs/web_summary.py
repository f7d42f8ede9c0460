"""The accounting of ``filter-web-data``: summary.json and the table printed at the end.

    documents in = kept + dropped (per filter; Gopher per rule) + failed (per reason)

Both come from the tasks' done markers alone, merged in task order: a resumed run, a run on 8 processes and one
on a Ray cluster print and write the same bytes.
"""

from __future__ import annotations

from impl.programs.web_filters import Tally
from impl.programs.web_records import FAILURES


def build_summary(config_sha256: str, tallies: list[dict], max_examples: int, extra: dict) -> dict:
    total = Tally(max_examples=max_examples)
    for tally in tallies:
        total.merge(Tally.from_dict(tally, max_examples))
    counts = total.to_dict()
    dropped, failed = sum(total.dropped.values()), sum(total.failed.values())
    if total.documents != total.kept + dropped + failed:  # a bug, never a user's mistake
        raise RuntimeError(f"accounting: {total.documents} documents in, but {total.kept} kept + {dropped} dropped + "
                           f"{failed} failed")
    return {"config_sha256": config_sha256,
            "documents": {"in": total.documents, "kept": total.kept, "dropped": dropped, "failed": failed},
            **{key: counts[key] for key in ("dropped", "failed", "other_records", "damaged_files", "masks",
                                            "gopher_rules", "examples")},
            **extra}


def format_table(summary: dict, filter_ids: list[str]) -> str:
    """The counts as a table, reasons in pipeline order, a few example URLs (and snippets) under each."""
    docs = summary["documents"]
    n = max(docs["in"], 1)
    lines = [f"{'documents':<34}{'count':>8}{'share':>8}", f"{'in':<34}{docs['in']:>8}",
             f"{'kept':<34}{docs['kept']:>8}{docs['kept'] / n:>8.1%}"]

    def order(reason: str) -> tuple:
        base = reason.split(":")[0] if reason.startswith("gopher") else reason
        return (filter_ids.index(base) if base in filter_ids else len(filter_ids), reason)

    for kind, reasons in (("dropped", sorted(summary["dropped"], key=order)),
                          ("failed", [r for r in FAILURES if r in summary["failed"]])):
        lines.append(f"{kind:<34}{docs[kind]:>8}{docs[kind] / n:>8.1%}")
        for reason in reasons:
            count = summary[kind][reason]
            lines.append(f"  {reason:<32}{count:>8}{count / n:>8.1%}")
            for example in summary["examples"].get(reason, []):
                text = f" {example['snippet']!r}" if example.get("snippet") else ""
                lines.append(f"      {example['url'] or '(no URL)'} [{example['detail']}]{text}"[:150])
    if summary["gopher_rules"]:
        lines.append("gopher rules broken (a document may break several): " +
                     ", ".join(f"{rule} {n}" for rule, n in summary["gopher_rules"].items()))
    masks = summary["masks"]
    if masks:
        lines.append(f"masked: {masks.get('emails', 0)} emails, {masks.get('phones', 0)} phone numbers, "
                     f"{masks.get('ips', 0)} IP addresses in {masks.get('documents', 0)} documents (kept or not)")
    if summary.get("dedup"):
        lines.append("dedup: " + ", ".join(f"{key.replace('_', ' ')} {n}" for key, n in summary["dedup"].items()))
    if summary["other_records"]:
        lines.append("other records (not documents): " +
                     ", ".join(f"{kind} {n}" for kind, n in summary["other_records"].items()))
    for damaged in summary["damaged_files"]:
        lines.append(f"damaged file: {damaged['file']}: {damaged['error']} after {damaged['records_read']} records; "
                     f"the rest of it is unreadable")
    return "\n".join(lines)

"""python -m validation.published: print the summary and write docs/accuracy.md's section."""

from __future__ import annotations

from validation.published import compare_all, serving, summarise, write_section

if __name__ == "__main__":
    comparisons = compare_all()
    for comparison in comparisons:
        print(f"{comparison.error:+7.1%}  {comparison.measurement.id}")
    summary = summarise(comparisons)
    print(
        f"{summary.count} cases: median |error| {summary.median_abs_error:.1%}, "
        f"{summary.within_10_percent} within 10 %, worst {summary.worst.error:+.1%}"
    )
    lines = serving.compare_all()
    for line in [*serving.summarise(lines), serving.overall(lines)]:
        print(
            f"serving {line.quantity}: {line.count} lines, median |error| "
            f"{line.median_abs_error:.1%}, {line.within_10_percent} within 10 %, "
            f"worst {line.worst.error:+.1%} ({line.worst.line.id})"
        )
    write_section()

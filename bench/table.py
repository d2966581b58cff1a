#!/usr/bin/env python3
"""bench/table.py ROWS.tsv: the table of bench/run.

Each line of ROWS.tsv is one figure of one repetition: rep, id, label, unit, baseline, fr,
ratio kind (x: fr / baseline, pct: 100 fr / baseline, -: none), goal text, goal expression
(Python over the medians ratio, fr and base; empty: information only). A figure that could not
be measured has NA. Prints a Markdown table: per id, min / median / max over the repetitions of
baseline, fr and the ratio computed within each repetition, and whether the medians meet the
goal."""
import statistics
import sys

DIGITS = {"ms": 3, "/s": 0, "%": 1, "MiB": 2, "s": 2, "/min": 0}


def num(v):
    try:
        return float(v)
    except ValueError:
        return None


def fmt(v, unit):
    if v is None:
        return "-"
    d = DIGITS.get(unit, 2)
    if unit == "/s" and v < 100:
        d = 1
    return f"{v:.{d}f}"


def mmm(vals, unit, suffix=""):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return fmt(vals[0], unit) + suffix
    return " / ".join(fmt(v, unit) for v in (min(vals), statistics.median(vals), max(vals))) + suffix


def main():
    rows = {}
    order = []
    reps = set()
    for line in open(sys.argv[1], encoding="utf-8"):
        f = line.rstrip("\n").split("\t")
        if len(f) < 9:
            continue
        rep, rid, label, unit, base, fr, kind, gtext, gexpr = f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]
        reps.add(rep)
        if rid not in rows:
            rows[rid] = {"label": label, "unit": unit, "kind": kind, "gtext": gtext, "gexpr": gexpr,
                         "base": [], "fr": [], "ratio": [], "missing": 0}
            order.append(rid)
        r = rows[rid]
        if unit != "NA" and r["unit"] == "NA":
            r.update(label=label, unit=unit, kind=kind, gtext=gtext, gexpr=gexpr)
        b, v = num(base), num(fr)
        if v is None:
            r["missing"] += 1
            continue
        r["base"].append(b)
        r["fr"].append(v)
        if b and kind == "x":
            r["ratio"].append(v / b)
        elif b and kind == "pct":
            r["ratio"].append(100 * v / b)
    n = len(reps)
    print(f"Min / median / max over {n} repetition{'s' if n != 1 else ''}; the ratio is taken within "
          "each repetition (fr against the baseline measured beside it); \"met?\" judges the medians.")
    print()
    print("| measure | unit | baseline | fr | ratio | goal | met? |")
    print("|---|---|---|---|---|---|---|")
    for rid in order:
        r = rows[rid]
        unit = r["unit"] if r["unit"] != "NA" else ""
        label = r["label"]
        if r["missing"]:
            label += f" (**not measured in {r['missing']} of {n}**)"
        suffix = {"x": "×", "pct": " %"}.get(r["kind"], "")
        ratio = mmm(r["ratio"], "ratio" if r["kind"] == "x" else "%", suffix) if r["ratio"] else "-"
        met = "-"
        if r["gexpr"] and r["fr"]:
            env = {"fr": statistics.median(r["fr"]),
                   "base": statistics.median([b for b in r["base"] if b is not None] or [0]),
                   "ratio": statistics.median(r["ratio"]) if r["ratio"] else None}
            try:
                met = "**yes**" if eval(r["gexpr"], {"__builtins__": {}}, env) else "**no**"
            except TypeError:
                met = "?"
        print(f"| {label} | {unit} | {mmm(r['base'], unit)} | {mmm(r['fr'], unit)} | {ratio} | "
              f"{r['gtext'] or '(info)'} | {met} |")


if __name__ == "__main__":
    main()

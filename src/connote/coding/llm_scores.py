"""The LLM coder's answers beside people's (:mod:`connote.coding.llm` makes them): which ratings and
answers came from an LLM, the agreement of an LLM coder with each person and with the people's value of a
pair (Krippendorff's alpha) or set (Cohen's kappa, accuracy), the agreement of the two orders of
``--both-orders`` (position bias), and the people's and the LLM's values combined. Pure functions over
the rows the study stores.
"""

from __future__ import annotations

import math

from connote.coding.files import DIMENSIONS

#: Prefix of the ``source`` of an answer an LLM gave (the id of the call that made it follows).
MACHINE_SOURCE = "call:"
#: Suffix of the coder name under which the (B, A) answers of ``--both-orders`` are kept.
REVERSED = "@BA"


def is_machine(source: str | None) -> bool:
    """True for an answer an LLM gave (its source is the call that made it)."""
    return bool(source) and str(source).startswith(MACHINE_SOURCE)


def order_agreement(ratings, coder: str) -> list[dict]:
    """Per dimension: how often the (A, B) and (B, A) answers of ``coder`` agree, and their
    Krippendorff's alpha (ordinal): position bias measured."""
    from connote.evaluate import krippendorff_alpha

    ab: dict[str, dict[int, int]] = {d: {} for d in DIMENSIONS}
    ba: dict[str, dict[int, int]] = {d: {} for d in DIMENSIONS}
    for r in ratings:
        if r["coder"] == coder:
            ab[r["dimension"]][r["pos"]] = r["value"]
        elif r["coder"] == coder + REVERSED:
            ba[r["dimension"]][r["pos"]] = r["value"]
    out = []
    for d in DIMENSIONS:
        both = sorted(set(ab[d]) & set(ba[d]))
        same = sum(ab[d][p] == ba[d][p] for p in both)
        alpha = krippendorff_alpha([[ab[d][p] for p in both], [ba[d][p] for p in both]], "ordinal")
        out.append(
            {
                "dimension": d,
                "pairs": len(both),
                "same": same,
                "share_same": same / len(both) if both else math.nan,
                "alpha": alpha,
            }
        )
    return out


GROUPS = ("humans", "llm", "all")


def split_ratings(ratings) -> tuple[list, list]:
    """(the humans' ratings, the consensus included; the LLM coders' (A, B) ratings). An LLM coder is one
    whose ratings came from calls; the (B, A) answers of --both-orders are left out of both."""
    machine = {r["coder"] for r in ratings if is_machine(r["source"])}
    humans = [r for r in ratings if r["coder"] not in machine and not r["coder"].endswith(REVERSED)]
    llm = [r for r in ratings if r["coder"] in machine and not r["coder"].endswith(REVERSED)]
    return humans, llm


def combine(humans: dict, llm: dict) -> dict:
    """Per dimension and pair: the mean of the humans' value and the LLM's (each side counts once); the
    one there is where only one side rated the pair."""
    out = {}
    for d in set(humans) | set(llm):
        h, m = humans.get(d, {}), llm.get(d, {})
        out[d] = {p: (h[p] + m[p]) / 2 if p in h and p in m else h.get(p, m.get(p)) for p in set(h) | set(m)}
    return out


def llm_agreement(pairs, own_h: dict, coders_h: list, human_values: dict, own_l: dict, coders_l: list):
    """Krippendorff's alpha (ordinal) per dimension between each LLM coder and each human coder, and
    between each LLM coder and the humans' value of a pair (their consensus, or their mean)."""
    from connote.evaluate import krippendorff_alpha

    out = []
    for d in DIMENSIONS:
        for m in coders_l:
            mine = own_l[d].get(m, {})
            others = [(h, own_h[d].get(h, {})) for h in coders_h]
            others.append(("(humans)", human_values[d]))
            for who, theirs in others:
                both = [p["pos"] for p in pairs if p["pos"] in mine and p["pos"] in theirs]
                table = [[mine[p] for p in both], [theirs[p] for p in both]]
                out.append(
                    {
                        "dimension": d,
                        "llm": m,
                        "with": who,
                        "alpha": krippendorff_alpha(table, "ordinal") if both else math.nan,
                        "pairs": len(both),
                    }
                )
    return out


def split_answers(answers) -> tuple[list[str], list[str]]:
    """(human evaluators, LLM evaluators) among a set sample's answers."""
    machine = {a["evaluator"] for a in answers if is_machine(a["source"])}
    people = {a["evaluator"] for a in answers} - machine
    return sorted(people), sorted(machine)


def set_agreement(sets, by: dict, people: list[str], machines: list[str], cluster_of: dict, merge: dict):
    """(Cohen's kappa of each LLM evaluator with each human on the sets both answered, each LLM
    evaluator's accuracy alone: its answer's cluster, after ``merge``, is the set's)."""
    from connote.evaluate import cohen_kappa

    def same(code: str, true: int) -> bool:
        c = cluster_of[code]
        return merge.get(c, c) == merge.get(true, true)

    kappas = []
    for m in machines:
        for h in people:
            both = [st["pos"] for st in sets if st["pos"] in by[m] and st["pos"] in by[h]]
            k = cohen_kappa([by[m][p] for p in both], [by[h][p] for p in both]) if both else math.nan
            kappas.append({"llm": m, "with": h, "kappa": k, "sets": len(both)})
    accuracy = {}
    for m in machines:
        answered = [st for st in sets if st["pos"] in by[m]]
        hits = sum(same(by[m][st["pos"]], st["cluster"]) for st in answered)
        accuracy[m] = hits / len(answered) if answered else math.nan
    return kappas, accuracy

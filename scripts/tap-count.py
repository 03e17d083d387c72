#!/usr/bin/env python3
"""Count test cases across meson test logs and TAP files.

Every test program speaks TAP, so each "ok"/"not ok" line is a case.  A
program that failed without reporting a failing case (crash, timeout,
sanitizer abort after its last case) counts as one more failure, and so
does each case a TAP plan ("1..N") promised but the file does not have.
Prints a line per suite and build, then the final "N passed, N failed".
"""
import json
import re
import sys

OK = re.compile(r"^ok\b")
NOT_OK = re.compile(r"^not ok\b")
SKIP = re.compile(r"#\s*skip", re.IGNORECASE)
PLAN = re.compile(r"^1\.\.(\d+)")


def tap_counts(text):
    p = f = skipped = 0
    plan = None  # the sum of the plans (a cmocka program prints one per group)
    for line in text.splitlines():
        line = line.strip()
        if NOT_OK.match(line):
            f += 1
        elif OK.match(line):
            if SKIP.search(line):
                skipped += 1
            else:
                p += 1
        elif PLAN.match(line):
            plan = (plan or 0) + int(PLAN.match(line).group(1))
    if plan is not None and p + f + skipped < plan:
        f += plan - (p + f + skipped)  # cases that never reported
    return p, f


def main(args):
    total_p = total_f = 0
    failures = []
    for arg in args:
        label, _, path = arg.partition("=")
        try:
            text = open(path).read()
        except OSError as e:
            print(f"{label}: cannot read {path}: {e}")
            total_f += 1
            failures.append(f"{label}: missing log")
            continue
        if path.endswith(".json"):
            per_suite = {}
            for line in text.splitlines():
                d = json.loads(line)
                suite = d["name"].split("/")[0].split(":")[-1].strip()
                p, f = tap_counts(d.get("stdout") or "")
                if p == 0 and f == 0 and d["result"] == "OK":
                    p = 1  # a passing program that does not speak TAP
                if d["result"] not in ("OK", "EXPECTEDFAIL", "SKIP") and f == 0:
                    f = 1
                    failures.append(f"{label} {d['name']}: {d['result']}")
                elif f:
                    failures.append(f"{label} {d['name']}: {f} failed case(s)")
                sp, sf = per_suite.get(suite, (0, 0))
                per_suite[suite] = (sp + p, sf + f)
            for suite, (p, f) in sorted(per_suite.items()):
                print(f"{label:>6} {suite:<8} {p:5d} passed, {f} failed")
                total_p += p
                total_f += f
        else:
            p, f = tap_counts(text)
            if f:
                failures.append(f"{label}: {f} failed case(s)")
            print(f"{label:>6} {'':<8} {p:5d} passed, {f} failed")
            total_p += p
            total_f += f
    for line in failures:
        print("FAILED:", line)
    print(f"{total_p} passed, {total_f} failed")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

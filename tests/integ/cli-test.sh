#!/bin/bash
# The README's commands, run as a user runs them: `vfiokit serve MODEL
# --socket S` (and `--fd N`) as real processes, `vfiokit info S` and
# `vfiokit info --json S` against them, `vfiokit demo`, and the errors a
# user gets for a wrong command line or a socket nobody serves.  `vfiokit
# info BDF` on a kernel-bound device runs in the guest tests
# (vfio-guest.sh, vfio-front-guest.sh).  Prints TAP.
#
# Environment: VFIOKIT (required), the binary under test.
set -u
: "${VFIOKIT:?VFIOKIT must name the vfiokit binary}"
work=$(mktemp -d "${TMPDIR:-/tmp}/vfk-cli.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { # DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@" >"$work/check.out" 2>&1; then ok "$what"; else nok "$what"; sed 's/^/# /' "$work/check.out" | head -n 20; fi
}
diag() { sed 's/^/# /'; }

serve() { # NAME SOCKET ARGS...: start a server, wait for its socket
    local name=$1 sock=$2 i; shift 2
    "$VFIOKIT" serve "$@" --socket "$sock" 2>"$work/$name.log" &
    pids+=($!)
    eval "pid_$name=$!"
    for ((i = 0; i < 200; i++)); do
        [[ -S $sock ]] && return 0
        sleep 0.05
    done
    return 1
}
stop() { # NAME: SIGTERM, and its status must be 0
    local pid
    eval "pid=\$pid_$1"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
}

# BARs each model implements (its region sizes say the same; checked too).
declare -A bars=(
    [dma-test]="0 2 4 5"
    [subpage]="0 1 2 3 4 5"
    [devmem]="0 2 4"
    [nvme]="0"
)
declare -A extra=( [nvme]="--size 16M" )

for model in dma-test subpage devmem nvme; do
    sock=$work/$model.sock
    # shellcheck disable=SC2086
    if serve "${model//-/_}" "$sock" "$model" ${extra[$model]:-}; then
        ok "vfiokit serve $model --socket listens"
    else
        nok "vfiokit serve $model --socket listens"
        diag <"$work/${model//-/_}.log"
        continue
    fi
    if "$VFIOKIT" info "$sock" >"$work/info.txt" 2>"$work/info.err"; then
        ok "vfiokit info on the $model socket exits 0"
    else
        nok "vfiokit info on the $model socket exits 0"
        diag <"$work/info.err"
    fi
    got=$(sed -n 's/^\tBAR\([0-5]\): .*/\1/p' "$work/info.txt" | tr '\n' ' ' | sed 's/ $//')
    if [[ $got == "${bars[$model]}" ]]; then
        ok "vfiokit info shows every BAR of $model ($got)"
    else
        nok "vfiokit info shows every BAR of $model: got '$got', want '${bars[$model]}'"
        diag <"$work/info.txt"
    fi
    if "$VFIOKIT" info --json "$sock" >"$work/info.json" 2>"$work/info.err" &&
       python3 - "$work/info.json" "${bars[$model]}" >"$work/json.out" 2>&1 <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
want = [int(x) for x in sys.argv[2].split()]
bars = [b["index"] for b in j["config"]["bars"]]
sized = [r["index"] for r in j["regions"] if r["index"] < 6 and r["size"] > 0]
assert bars == want, f"bars {bars}, want {want}"
assert sized == want, f"regions with a size {sized}, want {want}"
for b in j["config"]["bars"]:
    r = next(r for r in j["regions"] if r["index"] == b["index"])
    assert b["size"] == r["size"], f"BAR{b['index']} size {b['size']} != region {r['size']}"
EOF
    then
        ok "vfiokit info --json on $model parses, its BARs match its regions"
    else
        nok "vfiokit info --json on $model parses, its BARs match its regions"
        diag <"$work/json.out"
    fi
    if stop "${model//-/_}"; then ok "vfiokit serve $model exits 0 on SIGTERM"; else nok "vfiokit serve $model exits 0 on SIGTERM"; fi
done

# I/O BARs carry no memory attributes.
serve dt "$work/dt.sock" dma-test >/dev/null
# While another client holds the device, info says so (the server answers
# EBUSY instead of resetting the connection).
python3 - "$VFIOKIT" "$work/dt.sock" >"$work/busy.out" 2>&1 <<'EOF2'
import socket, subprocess, sys
exe, path = sys.argv[1], sys.argv[2]
holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
holder.connect(path)
r = subprocess.run([exe, "info", path], capture_output=True, text=True, timeout=30)
holder.close()
assert r.returncode != 0, "info succeeded while another client held the device"
assert "in use by another client" in r.stderr, r.stderr
EOF2
if [[ $? -eq 0 ]]; then
    ok "vfiokit info on a device another client holds says it is in use"
else
    nok "vfiokit info on a device another client holds says it is in use"
    diag <"$work/busy.out"
fi
"$VFIOKIT" info "$work/dt.sock" >"$work/dt.txt" 2>&1
attrs=$(sed -n '/^  5 BAR5/,/^  [0-9]/p' "$work/dt.txt" | grep 'attrs:')
if [[ $attrs == *"I/O space"* && $attrs != *prefetchable* ]]; then
    ok "vfiokit info shows an I/O BAR without memory attributes"
else
    nok "vfiokit info shows an I/O BAR without memory attributes: '$attrs'"
fi
stop dt

# --fd N: a socket the caller made and listens on (socket activation).
python3 - "$VFIOKIT" "$work/fd.sock" >"$work/fd.out" 2>&1 <<'EOF'
import os, socket, subprocess, sys, time
exe, path = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
p = subprocess.Popen([exe, "serve", "dma-test", "--fd", str(s.fileno()), "-q"],
                     pass_fds=[s.fileno()])
s.close()
r = subprocess.run([exe, "info", path], capture_output=True, text=True, timeout=30)
p.terminate()
rc = p.wait(timeout=10)
assert r.returncode == 0, r.stderr
assert "Device 1234:df01" in r.stdout, r.stdout
assert rc == 0, f"server exit {rc}"
EOF
if [[ $? -eq 0 ]]; then
    ok "vfiokit serve --fd N serves on an inherited listening socket"
else
    nok "vfiokit serve --fd N serves on an inherited listening socket"
    diag <"$work/fd.out"
fi

# Errors a user meets: a clear message and a non-zero status.
if "$VFIOKIT" info "$work/nobody.sock" >"$work/e.out" 2>&1; then
    nok "vfiokit info on a socket nobody serves fails"
else
    if grep -q 'cannot connect' "$work/e.out"; then
        ok "vfiokit info on a socket nobody serves fails with a clear message"
    else
        nok "vfiokit info on a socket nobody serves fails with a clear message"
        diag <"$work/e.out"
    fi
fi
"$VFIOKIT" serve no-such-model --socket "$work/x.sock" >"$work/e.out" 2>&1
rc=$?
if ((rc != 0)) && [[ ! -e $work/x.sock ]] && [[ -s $work/e.out ]]; then
    ok "vfiokit serve of an unknown model fails with a message (status $rc)"
else
    nok "vfiokit serve of an unknown model fails with a message (status $rc)"
    diag <"$work/e.out"
fi
if "$VFIOKIT" serve --help >"$work/help.out" 2>&1 &&
   grep -q -- '--page-size' "$work/help.out" && grep -q -- '--msix LAYOUT' "$work/help.out"; then
    ok "vfiokit serve --help lists the options"
else
    nok "vfiokit serve --help lists the options"
    diag <"$work/help.out"
fi

# An option a model cannot take is refused, naming the option and the
# model; nothing listens then.
refused() { # WHAT-IT-SAYS MODEL ARGS...
    local says=$1 model=$2 rc; shift 2
    "$VFIOKIT" serve "$model" "$@" --socket "$work/r.sock" >"$work/e.out" 2>&1
    rc=$?
    if ((rc == 2)) && grep -q -- "$says" "$work/e.out" && [[ ! -e $work/r.sock ]]; then
        ok "vfiokit serve $model $* is refused: $says"
    else
        nok "vfiokit serve $model $* is refused: $says (status $rc)"
        diag <"$work/e.out"
    fi
}
refused "--msix does not apply to model devmem (it has no MSI-X)" devmem --msix trapped
refused "--trap-doorbells does not apply to model dma-test" dma-test --trap-doorbells
refused "--size does not apply to model subpage" subpage --size 1M
refused "--page-size does not apply to model passthrough" passthrough --device 0000:00:01.0 --page-size 65536
refused "--device does not apply to model nvme" nvme --device 0000:00:01.0
refused "--revoke-on-disable does not apply to model nvme" nvme --revoke-on-disable
# A layout a model cannot have: subpage uses every BAR slot.
"$VFIOKIT" serve subpage --msix relocated --socket "$work/r.sock" >"$work/e.out" 2>&1
rc=$?
if ((rc != 0)) && grep -q 'no free BAR' "$work/e.out"; then
    ok "vfiokit serve subpage --msix relocated fails: no free BAR slot"
else
    nok "vfiokit serve subpage --msix relocated fails: no free BAR slot (status $rc)"
    diag <"$work/e.out"
fi
# Every device-wide option, on every emulated model, starts a server.
for model in dma-test subpage devmem nvme; do
    args=(--page-size 65536 --disabled-access ones --dma-mask 40)
    [[ $model != devmem ]] && args+=(--msix trapped)
    [[ $model != nvme ]] && args+=(--revoke-on-disable)
    [[ $model == nvme ]] && args+=(--size 16M)
    if serve opt "$work/opt.sock" "$model" "${args[@]}" && "$VFIOKIT" info "$work/opt.sock" >"$work/opt.txt" 2>&1 &&
       grep -q 'decoding off: all-ones' "$work/opt.txt" && stop opt; then
        ok "vfiokit serve $model takes every device-wide option"
    else
        nok "vfiokit serve $model takes every device-wide option"
        diag <"$work/opt.log"
    fi
    rm -f "$work/opt.sock"
done

# The README's demo, as `vfiokit demo` (what scripts/demo.sh ends with).
if timeout 120 "$VFIOKIT" demo >"$work/demo.out" 2>&1; then
    ok "vfiokit demo runs to its end"
else
    nok "vfiokit demo runs to its end"
    tail -n 20 "$work/demo.out" | diag
fi

echo "1..$n"
exit $((failed > 0))

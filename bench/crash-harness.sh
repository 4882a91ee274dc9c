#!/usr/bin/env bash
# Crash-consistency harness: a write-heavy workload on a cdsfs mount, the mount process killed with
# SIGKILL at a random moment, then the dead mount cleaned up, the home checked and mounted again.
#
#   bench/crash-harness.sh [--iterations N] [--bin PATH] [--seed S] [--per-home K] [--max-delay SECONDS]
#                          [--keep]
#
# Each iteration:
#   1. mounts the home (commit_interval picked at random from 0.2, 1 and 5 s) and starts the workload
#      (Python, one thread: many small files, some fsync'd, renames, hard links, a few large writes,
#      deletes, directories, directory fsyncs) in its own folder it<N>;
#   2. after a random delay (0 to --max-delay seconds, default 3) SIGKILLs the mount process, waits for
#      the workload to stop on the dead mount, and cleans the mount up (fusermount3 -u, else umount -l);
#   3. checks: `cdsfs fsck` passes; after mounting again, every file the workload fsync'd has exactly
#      its fsync'd content (see "The journal" below); the files of earlier iterations of the same home
#      are exactly as their own check found them; and the mounted tree is identical (types, modes, sizes,
#      contents, mtimes, symlink targets, link counts, user xattrs) to the newest version of `cdsfs log`
#      mounted read-only with `--at` on a second mount point; `cdsfs fsck` passes again after unmount.
# A home serves --per-home iterations (default 10; the data of earlier iterations must survive later
# crashes), then a fresh home is made. Ends with one line: "N passed, M failed".
#
# The journal. The workload appends one JSON line to a file on the native disk after each operation on
# a durable file returns; since the workload is sequential and a commit captures the volume between
# two operations, what a crash may leave is decidable:
#   ["F", path, sha256]   the file was created, written once and fsync'd; fsync returned
#   ["S"]                 a directory fsync returned (commits everything before it)
#   ["B", "rename", a, b] about to rename durable a to b (b fresh, or another durable file: replaced)
#   ["B", "link", a, b]   about to hard-link durable a as b
#   ["B", "unlink", a]    about to unlink durable a
#   ["E"]                 the operation begun last returned
# Durable files are never written again. Every operation up to the last F or S was committed by that
# fsync; the ones after it may or may not have been, in order. The check passes if the durable paths
# of this iteration on the remounted tree match the state after some prefix of the journal that
# includes everything up to the last F/S. Scratch files (not fsync'd) may be lost or kept, but the
# tree as a whole must be one committed version (step 3).
#
# The binary: --bin, else $CDSFS_BIN, else .build/debug/cdsfs or .build/release/cdsfs of this checkout.
# Needs root, /dev/fuse, fusermount3 and python3. Nothing stays mounted, whatever happens (the EXIT
# trap unmounts and ends the processes it started); failed iterations keep their home, journal and logs
# under the work directory, which is printed (removed when all passed unless --keep).
set -uo pipefail

iterations=20
bin=${CDSFS_BIN:-}
seed=$(( $(date +%s) % 1000000 ))
per_home=10
max_delay=3
keep=0
while (( $# )); do
    case $1 in
        --iterations) iterations=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --per-home) per_home=$2; shift 2 ;;
        --max-delay) max_delay=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "crash-harness: unknown argument $1 (see --help)" >&2; exit 64 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z $bin ]]; then
    for candidate in "$root/.build/debug/cdsfs" "$root/.build/release/cdsfs"; do
        [[ -x $candidate ]] && { bin=$candidate; break; }
    done
fi
[[ -n $bin && -x $bin ]] || { echo "crash-harness: no cdsfs binary (give --bin PATH or set CDSFS_BIN)" >&2; exit 64; }
[[ -e /dev/fuse ]] || { echo "crash-harness: no /dev/fuse" >&2; exit 64; }
python=$(command -v python3) || { echo "crash-harness: needs python3" >&2; exit 64; }

work=$(mktemp -d "${TMPDIR:-/tmp}/cdsfs-crash-XXXXXX")
mnt=$work/mnt
at=$work/at
mkdir -p "$mnt" "$at" "$work/failures"
workload_pid=""

is_mounted() { "$python" - "$1" <<'EOF'
import sys
want = sys.argv[1]
def unescape(s):
    return s.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")
for line in open("/proc/self/mountinfo"):
    if unescape(line.split(" ")[4]) == want:
        sys.exit(0)
sys.exit(1)
EOF
}

# Unmounts whatever way works; never fails.
force_unmount() {
    local m=$1
    is_mounted "$m" || return 0
    "$bin" unmount "$m" >/dev/null 2>&1
    is_mounted "$m" && fusermount3 -u "$m" >/dev/null 2>&1
    is_mounted "$m" && umount -l "$m" >/dev/null 2>&1
    is_mounted "$m" && fusermount3 -uz "$m" >/dev/null 2>&1
    return 0
}

# The pids of processes (other than us) whose command line holds `mount` and the given mount point.
daemons_of() {
    local m=$1 p
    for p in /proc/[0-9]*; do
        [[ ${p#/proc/} == "$$" ]] && continue
        tr '\0' '\n' 2>/dev/null < "$p/cmdline" | grep -qx -- "$m" || continue
        tr '\0' '\n' 2>/dev/null < "$p/cmdline" | grep -qx mount && echo "${p#/proc/}"
    done
}

alive() { [[ -e /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

wait_gone() {  # pid seconds
    local pid=$1 tenths=$(( $2 * 10 ))
    while alive "$pid" && (( tenths-- > 0 )); do sleep 0.1; done
    ! alive "$pid"
}

cleanup() {
    if [[ -n $workload_pid ]]; then kill -KILL "$workload_pid" 2>/dev/null; wait "$workload_pid" 2>/dev/null; fi
    for m in "$mnt" "$at"; do
        force_unmount "$m"
        for pid in $(daemons_of "$m"); do
            wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null
        done
    done
    if is_mounted "$mnt" || is_mounted "$at"; then
        echo "crash-harness: could not unmount $mnt / $at" >&2
    fi
}
trap 'cleanup' EXIT
trap 'echo "crash-harness: interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------------------------------------------
# The workload: python3 workload.py MOUNT DIR JOURNAL SEED. Exits 0 when the mount goes away under it
# (ENOTCONN, ECONNABORTED: the kill), 3 on any other error, printing the time and the error: an error
# before the kill is a bug; after it, a dead mount's answer.
cat > "$work/workload.py" <<'EOF'
import errno, hashlib, json, os, random, sys, time

mnt, base, journal_path, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rnd = random.Random(seed)
journal = open(journal_path, "a", buffering=1)
GONE = (errno.ENOTCONN, errno.ECONNABORTED)

def log(*entry):
    journal.write(json.dumps(list(entry)) + "\n")
    journal.flush()

def p(rel):
    return os.path.join(mnt, rel)

def payload(n):
    # Mostly random bytes; some repeated blocks (deduplication) and some zero runs (holes).
    kind = rnd.random()
    if kind < 0.15 and n > 0:
        block = rnd.randbytes(min(n, 70000))
        return (block * (n // len(block) + 1))[:n]
    if kind < 0.25:
        return bytes(n // 2) + rnd.randbytes(n - n // 2)
    return rnd.randbytes(n)

def write_file(rel, data, pieces=None, fsync=True, datasync=False):
    fd = os.open(p(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        step = pieces or max(1, len(data))
        for off in range(0, len(data), step):
            chunk = data[off:off + step]
            done = 0
            while done < len(chunk):
                done += os.write(fd, chunk[done:])
        if fsync:
            (os.fdatasync if datasync else os.fsync)(fd)
    finally:
        os.close(fd)

seq = 0
def fresh(directory, prefix):
    global seq
    seq += 1
    return f"{directory}/{prefix}{seq}"

dirs = [base]
durable = {}   # path -> (sha, identity): fsync'd files (hard links share an identity)
scratch = []   # paths of files never fsync'd
links = []     # symbolic links

def small_size():
    r = rnd.random()
    if r < 0.1: return 0
    if r < 0.6: return rnd.randint(1, 4096)           # inline in the directory entry
    if r < 0.9: return rnd.randint(4097, 70000)
    return rnd.randint(70000, 400000)                  # a few chunks

def op_durable():
    rel = fresh(rnd.choice(dirs), "f")
    data = payload(small_size())
    write_file(rel, data, pieces=rnd.choice([None, 4096, 65536]), datasync=rnd.random() < 0.3)
    sha = hashlib.sha256(data).hexdigest()
    log("F", rel, sha)
    durable[rel] = (sha, rel)

def op_large_durable():
    rel = fresh(rnd.choice(dirs), "big")
    data = payload(rnd.randint(1, 6) * 1024 * 1024 + rnd.randint(0, 100000))
    write_file(rel, data, pieces=rnd.choice([131072, 1048576]))
    sha = hashlib.sha256(data).hexdigest()
    log("F", rel, sha)
    durable[rel] = (sha, rel)

def op_large_scratch():
    rel = fresh(rnd.choice(dirs), "bigs")
    write_file(rel, payload(rnd.randint(1, 4) * 1024 * 1024), pieces=1048576, fsync=False)
    scratch.append(rel)

def op_scratch():
    rel = fresh(rnd.choice(dirs), "s")
    write_file(rel, payload(small_size()), pieces=rnd.choice([None, 4096]), fsync=False)
    scratch.append(rel)
    if rnd.random() < 0.2:
        os.setxattr(p(rel), "user.note", rnd.randbytes(rnd.randint(0, 64)))
    if rnd.random() < 0.2:
        os.chmod(p(rel), rnd.choice([0o600, 0o755, 0o444]))

def op_scratch_change():
    if not scratch: return
    rel = rnd.choice(scratch)
    r = rnd.random()
    if r < 0.35:
        with open(p(rel), "ab") as f: f.write(payload(rnd.randint(1, 20000)))
    elif r < 0.55:
        os.truncate(p(rel), rnd.randint(0, 10000))
    elif r < 0.8:
        new = fresh(rnd.choice(dirs), "s")
        os.rename(p(rel), p(new))
        scratch[scratch.index(rel)] = new
    else:
        with open(p(rel), "r+b") as f:
            f.seek(rnd.randint(0, 5000)); f.write(payload(rnd.randint(1, 3000)))

def op_scratch_delete():
    if not scratch: return
    rel = scratch.pop(rnd.randrange(len(scratch)))
    os.unlink(p(rel))

def op_rename():
    if not durable: return
    a = rnd.choice(sorted(durable))
    if rnd.random() < 0.3 and len(durable) > 1:
        b = rnd.choice(sorted(durable))
        if b == a or durable[b][1] == durable[a][1]:
            return  # rename onto another name of the same file does nothing: not in the model
    else:
        b = fresh(rnd.choice(dirs), "r")
    log("B", "rename", a, b)
    os.rename(p(a), p(b))
    log("E")
    durable[b] = durable.pop(a)

def op_replace():
    # The editor's way: write a new file, fsync it, rename it over the old one.
    if not durable: return
    target = rnd.choice(sorted(durable))
    tmp = fresh(target.rsplit("/", 1)[0], "tmp")
    data = payload(small_size())
    write_file(tmp, data)
    sha = hashlib.sha256(data).hexdigest()
    log("F", tmp, sha)
    durable[tmp] = (sha, tmp)
    log("B", "rename", tmp, target)
    os.rename(p(tmp), p(target))
    log("E")
    durable[target] = durable.pop(tmp)

def op_link():
    if not durable: return
    a = rnd.choice(sorted(durable))
    b = fresh(rnd.choice(dirs), "h")
    log("B", "link", a, b)
    os.link(p(a), p(b))
    log("E")
    durable[b] = durable[a]

def op_unlink():
    if not durable: return
    a = rnd.choice(sorted(durable))
    log("B", "unlink", a)
    os.unlink(p(a))
    log("E")
    del durable[a]

def op_mkdir():
    rel = fresh(rnd.choice(dirs), "d")
    os.mkdir(p(rel))
    dirs.append(rel)

def op_rmdir():
    if len(dirs) < 2: return
    rel = rnd.choice(dirs[1:])
    try:
        os.rmdir(p(rel))
    except OSError as e:
        if e.errno == errno.ENOTEMPTY: return
        raise
    dirs.remove(rel)

def op_symlink():
    rel = fresh(rnd.choice(dirs), "l")
    os.symlink(rnd.choice(["../x", "/etc/hostname", "nowhere", "f1"]), p(rel))
    links.append(rel)

def op_dirsync():
    fd = os.open(p(rnd.choice(dirs)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    log("S")

ops = [(op_durable, 26), (op_scratch, 18), (op_scratch_change, 10), (op_scratch_delete, 7), (op_rename, 9),
       (op_replace, 4), (op_link, 3), (op_unlink, 4), (op_mkdir, 5), (op_rmdir, 2), (op_symlink, 2),
       (op_dirsync, 2), (op_large_durable, 1.5), (op_large_scratch, 1.5)]
functions = [f for f, _ in ops]
weights = [w for _, w in ops]

try:
    os.mkdir(p(base))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rnd.choices(functions, weights)[0]()
except OSError as e:
    if e.errno in GONE:
        sys.exit(0)
    # When: once the daemon is dead any call may fail (close can answer EIO); before, none may.
    print(f"{time.time():.6f} {e!r}", file=sys.stderr)
    sys.exit(3)
EOF

# ---------------------------------------------------------------------------------------------------
# The check: python3 check.py MOUNT AT_MOUNT JOURNAL STATE_DIR DIR. Prints what is wrong and exits 1.
cat > "$work/check.py" <<'EOF'
import hashlib, json, os, stat, sys

mnt, at, journal_path, states, base = sys.argv[1:6]
problems = []

def observe(rel):
    path = os.path.join(mnt, rel)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"<lstat: {e.strerror}>"
    if not stat.S_ISREG(st.st_mode):
        return f"<not a regular file: mode {st.st_mode:o}>"
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except OSError as e:
        return f"<read: {e.strerror}>"
    return h.hexdigest()

# 1. The journal of this iteration.
ops = []
with open(journal_path) as f:
    text = f.read()
for line in text.split("\n"):
    if not line:
        continue
    try:
        entry = json.loads(line)
    except ValueError:
        continue  # a line cut short by the end of the workload
    if entry[0] == "E":
        ops[-1]["ended"] = True
    elif entry[0] == "B":
        ops.append({"op": entry[1:], "ended": False})
    else:
        ops.append({"op": entry, "ended": True})

def apply(state, op):
    kind = op[0]
    if kind == "F":
        state[op[1]] = op[2]
    elif kind == "rename":
        state[op[2]] = state.pop(op[1])
    elif kind == "link":
        state[op[2]] = state[op[1]]
    elif kind == "unlink":
        del state[op[1]]

last_sync = max([i for i, o in enumerate(ops) if o["op"][0] in ("F", "S")], default=-1)
for i, o in enumerate(ops[:-1]):
    if not o["ended"]:
        problems.append(f"journal: operation {i} {o['op']} began but did not end, yet another followed")
names = set()
for o in ops:
    op = o["op"]
    if op[0] in ("F", "unlink"): names.add(op[1])
    if op[0] in ("rename", "link"): names.update(op[1:3])
observed = {n: observe(n) for n in sorted(names)}
state = {}
for o in ops[:last_sync + 1]:
    apply(state, o["op"])
candidates = []
matched = None
for k in range(last_sync + 1, len(ops) + 1):
    if k > last_sync + 1:
        apply(state, ops[k - 1]["op"])
    expected = {n: state.get(n) for n in names}
    candidates.append((k, dict(expected)))
    if expected == observed:
        matched = k
        break
if matched is None:
    k, expected = candidates[0]
    wrong = [f"  {n}: expected {expected[n] or 'absent'}, found {observed[n] or 'absent'}"
             for n in sorted(names) if expected[n] != observed[n]]
    problems.append(f"the fsync'd files match no state the journal allows ({len(ops)} operations, last sync "
                    f"at {last_sync}, {len(candidates)} candidate states); against the state at the last sync:\n"
                    + "\n".join(wrong[:30]))
else:
    with open(os.path.join(states, base + ".json"), "w") as f:
        json.dump({n: v for n, v in observed.items() if v is not None}, f)

# 2. Earlier iterations of this home: exactly as their own check found them.
for name in sorted(os.listdir(states)):
    if name == base + ".json":
        continue
    with open(os.path.join(states, name)) as f:
        earlier = json.load(f)
    for rel, sha in sorted(earlier.items()):
        got = observe(rel)
        if got != sha:
            problems.append(f"{rel} (from {name[:-5]}): expected {sha}, found {got or 'absent'}")

# 3. The mounted tree is the newest committed version, byte for byte.
def snapshot(top):
    out = {}
    for d, subdirs, files in os.walk(top):
        subdirs.sort()
        for name in sorted(subdirs + files):
            path = os.path.join(d, name)
            rel = os.path.relpath(path, top)
            try:
                st = os.lstat(path)
            except OSError as e:
                out[rel] = f"lstat {e.strerror}"
                continue
            item = [stat.filemode(st.st_mode), st.st_size, st.st_mtime_ns, st.st_nlink]
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                try:
                    with open(path, "rb") as f:
                        while block := f.read(1 << 20):
                            h.update(block)
                    item.append(h.hexdigest())
                except OSError as e:
                    item.append(f"read {e.strerror}")
            elif stat.S_ISLNK(st.st_mode):
                item.append(os.readlink(path))
            try:
                item.append(sorted((a, os.getxattr(path, a, follow_symlinks=False).hex())
                                   for a in os.listxattr(path, follow_symlinks=False) if a.startswith("user.")))
            except OSError as e:
                item.append(f"xattr {e.strerror}")
            out[rel] = item
    return out

a, b = snapshot(mnt), snapshot(at)
for rel in sorted(set(a) | set(b)):
    if a.get(rel) != b.get(rel):
        problems.append(f"tree: {rel}: mounted {a.get(rel, 'absent')} ≠ newest version {b.get(rel, 'absent')}")
        if len(problems) > 60:
            break

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"ok: {len(ops)} journal entries, {len(names)} durable paths, matched state {matched} "
      f"(last sync {last_sync}), {len(a)} entries in the tree")
EOF

# ---------------------------------------------------------------------------------------------------
rand_float() { "$python" -c "import random,sys; r=random.Random($1); print(f'{r.uniform(0,$2):.3f}')"; }

passed=0
failed=0
start=$(date +%s)
home=""
echo "crash-harness: $iterations iterations, seed $seed, binary $bin, work directory $work"
for (( i = 1; i <= iterations; i++ )); do
    iseed=$(( seed * 1000 + i ))
    if [[ -z $home ]] || (( (i - 1) % per_home == 0 )); then
        home=$work/home-$i
        states=$work/states-$i
        mkdir -p "$states"
        if ! "$bin" init --home "$home" > "$work/init.out" 2>&1; then
            echo "iteration $i: cdsfs init failed: $(cat "$work/init.out")"
            failed=$(( failed + 1 )); home=""; continue
        fi
    fi
    journal=$work/journal-$i
    : > "$journal"
    intervals=(0.2 1 5)
    interval=${intervals[$(( iseed % 3 ))]}
    delay=$(rand_float "$iseed" "$max_delay")
    why=""
    detail=""
    checked=""

    if ! out=$("$bin" mount --home "$home" -o "commit_interval=$interval" "$mnt" 2>&1); then
        why="mount failed: $out"
    fi
    daemon=""
    if [[ -z $why ]]; then
        daemon=$(cat "$home/mount.pid" 2>/dev/null | tr -d '[:space:]')
        [[ -n $daemon ]] && alive "$daemon" || why="no live daemon in $home/mount.pid"
    fi
    if [[ -z $why ]]; then
        "$python" "$work/workload.py" "$mnt" "it$i" "$journal" "$iseed" 2> "$work/workload-$i.err" &
        workload_pid=$!
        sleep "$delay"
        if ! alive "$workload_pid"; then
            wait "$workload_pid"; rc=$?
            workload_pid=""
            (( rc != 0 )) && why="the workload failed while the mount was alive (exit $rc): $(cat "$work/workload-$i.err")"
        fi
        killed_at=$(date +%s.%N)
        kill -KILL "$daemon"
        wait_gone "$daemon" 10 || why="${why:+$why; }the daemon $daemon survived SIGKILL"
        if [[ -n $workload_pid ]]; then
            for _ in $(seq 1 200); do alive "$workload_pid" || break; sleep 0.1; done
            alive "$workload_pid" && { why="${why:+$why; }the workload hung on the dead mount"; kill -KILL "$workload_pid"; }
            wait "$workload_pid"; rc=$?
            workload_pid=""
            if (( rc == 3 )); then
                read -r failed_at failure < "$work/workload-$i.err"
                if "$python" -c "import sys; sys.exit(0 if float('$failed_at') < float('$killed_at') else 1)"; then
                    why="${why:+$why; }the workload failed while the mount was alive: $failure"
                fi
            elif (( rc != 0 )); then
                why="${why:+$why; }the workload ended with status $rc: $(cat "$work/workload-$i.err")"
            fi
        fi
        fusermount3 -u "$mnt" >/dev/null 2>&1 || true
        is_mounted "$mnt" && umount -l "$mnt" >/dev/null 2>&1
        is_mounted "$mnt" && why="${why:+$why; }the dead mount could not be cleaned up"
    fi
    if [[ -z $why ]]; then
        if ! out=$("$bin" fsck --home "$home" 2>&1); then why="fsck after the kill failed"; detail=$out; fi
    fi
    if [[ -z $why ]]; then
        newest=$("$bin" log --home "$home" 2>&1 | head -1 | cut -c1-64)
        if ! out=$("$bin" mount --home "$home" "$mnt" 2>&1); then
            why="remount failed"; detail=$out
        elif ! out=$("$bin" mount --home "$home" --at "$newest" "$at" 2>&1); then
            why="mount --at $newest failed"; detail=$out
        elif ! out=$("$python" "$work/check.py" "$mnt" "$at" "$journal" "$states" "it$i" 2>&1); then
            why="check failed"; detail=$out
        else
            checked=$out
        fi
        for m in "$at" "$mnt"; do
            if is_mounted "$m" && ! u=$("$bin" unmount "$m" 2>&1); then
                why="${why:+$why; }unmount $m failed: $u"
            fi
            force_unmount "$m"
        done
    fi
    if [[ -z $why ]]; then
        if ! out=$("$bin" fsck --home "$home" 2>&1); then why="fsck after the remount failed"; detail=$out; fi
    fi
    for m in "$mnt" "$at"; do
        force_unmount "$m"
        for pid in $(daemons_of "$m"); do wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null; done
    done

    entries=$(wc -l < "$journal")
    if [[ -z $why ]]; then
        passed=$(( passed + 1 ))
        printf 'iteration %d: ok (interval %s s, killed after %s s) %s\n' "$i" "$interval" "$delay" "${checked#ok: }"
    else
        failed=$(( failed + 1 ))
        printf 'iteration %d: FAILED (interval %s s, killed after %s s, %d journal lines, seed %s): %s\n' \
            "$i" "$interval" "$delay" "$entries" "$iseed" "$why"
        [[ -n $detail ]] && printf '%s\n' "$detail" | head -40 | sed 's/^/    /'
        keepdir=$work/failures/iteration-$i
        mkdir -p "$keepdir"
        cp -a "$home" "$keepdir/home" 2>/dev/null
        cp "$journal" "$work/workload-$i.err" "$keepdir/" 2>/dev/null
        home=""  # the next iteration starts from a fresh home
    fi
    rm -f "$work/workload-$i.err"
done
seconds=$(( $(date +%s) - start ))
echo "$passed passed, $failed failed ($iterations iterations in ${seconds} s)"
if (( failed == 0 && keep == 0 )); then
    cleanup
    rm -rf "$work"
else
    echo "kept $work"
fi
(( failed == 0 ))

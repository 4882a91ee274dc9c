#!/usr/bin/env bash
# A one-node Ceph cluster with radosgw (S3) on 127.0.0.1, for the S3 tests and the S3 benchmark.
#
#   scripts/ceph.sh start    installs Debian's packages if missing, starts monitor, OSD and radosgw,
#                            creates the test user; prints the endpoint. Does nothing if already up.
#   scripts/ceph.sh stop     stops every daemon it started (by their pid files) and deletes the data.
#   scripts/ceph.sh status   exit 0 and the endpoint if radosgw answers, else exit 1.
#   scripts/ceph.sh env      the export lines for a shell: endpoint, region and the test user's keys.
#
# Everything lives under $CDSFS_CEPH_DIR (default /tmp/cdsfs-ceph): config, data (a sparse 10 GiB
# bluestore file), logs, pid files and admin sockets. No auth inside the cluster (it listens on
# loopback only); S3 requests are checked by radosgw against the fixed test user's keys below.
# No manager daemon: it is not needed for object I/O and costs ~300 MB. Ready in about 18 s here.
set -euo pipefail

DIR=${CDSFS_CEPH_DIR:-/tmp/cdsfs-ceph}
PORT=${CDSFS_CEPH_PORT:-7480}
MON_PORT=${CDSFS_CEPH_MON_PORT:-3300}
ACCESS_KEY=cdsfstestaccesskey
SECRET_KEY=cdsfstestsecretkey0123456789abcdef
ENDPOINT="http://127.0.0.1:$PORT"
CONF="$DIR/ceph.conf"

say() { echo "ceph.sh: $*" >&2; }

# radosgw answers an anonymous GET / with an empty bucket list; anything else on the port is not it.
answering() { curl -s --max-time 2 "$ENDPOINT/" 2>/dev/null | grep -q ListAllMyBucketsResult; }

install_packages() {
    if command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null && command -v radosgw >/dev/null \
        && command -v radosgw-admin >/dev/null && command -v monmaptool >/dev/null && command -v curl >/dev/null; then
        return
    fi
    say "installing Ceph (Debian packages, about 40 s)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends ceph-mon ceph-osd ceph-mgr radosgw ceph-common curl >/dev/null
}

write_config() {
    local fsid=$1
    cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
keyring = $DIR/keyring
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
mon max pg per osd = 1000

[mon.a]
mon data = $DIR/mon

[osd.0]
osd data = $DIR/osd
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 10737418240
bluestore cache autotune = false
bluestore cache size = 268435456
osd memory target = 536870912

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $DIR/rgw
ms mon client mode = crc
rgw dns name = 127.0.0.1
EOF
}

ceph_() { ceph -c "$CONF" --connect-timeout 10 "$@"; }

wait_for() {  # seconds, description, command…
    local seconds=$1 what=$2
    shift 2
    local i
    for ((i = 0; i < seconds * 4; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    say "timed out after $seconds s waiting for $what; logs in $DIR/log"
    tail -n 20 "$DIR"/log/*.log >&2 2>/dev/null || true
    return 1
}

osd_up() { ceph_ osd dump 2>/dev/null | grep -q '^osd.0 up'; }

start() {
    if answering; then
        say "already running on $ENDPOINT"
        echo "$ENDPOINT"
        return 0
    fi
    install_packages
    # Whatever an earlier run left behind (a crash, a killed script) is stopped and removed first.
    stop_daemons
    rm -rf "$DIR"
    mkdir -p "$DIR"/{run,log,mon,osd,rgw}
    local fsid
    fsid=$(cat /proc/sys/kernel/random/uuid)
    write_config "$fsid"

    # Monitor: mkfs wants a keyring even without auth.
    ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT]" --fsid "$fsid" "$DIR/monmap" >/dev/null
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring"
    ceph-mon -c "$CONF" -i a 2>>"$DIR/log/daemons.err"
    wait_for 30 "the monitor" ceph_ mon stat

    # One OSD on a sparse file, under the default root.
    local uuid
    uuid=$(cat /proc/sys/kernel/random/uuid)
    ceph_ osd new "$uuid" 0 >/dev/null
    ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" 2>"$DIR/log/osd-mkfs.err" || { cat "$DIR/log/osd-mkfs.err" >&2; exit 1; }
    ceph_ osd crush add-bucket localhost host >/dev/null 2>&1
    ceph_ osd crush move localhost root=default >/dev/null 2>&1
    ceph_ osd crush add osd.0 1.0 host=localhost >/dev/null 2>&1
    ceph-osd -c "$CONF" -i 0 2>>"$DIR/log/daemons.err"
    wait_for 60 "osd.0 to be up" osd_up

    # radosgw creates its pools on first start.
    radosgw -c "$CONF" -n client.rgw.a 2>>"$DIR/log/daemons.err"
    wait_for 90 "radosgw on $ENDPOINT" answering
    radosgw-admin -c "$CONF" user create --uid=cdsfs-test --display-name="cdsfs tests" \
        --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
    say "running on $ENDPOINT (data, logs and pid files in $DIR)"
    echo "$ENDPOINT"
}

# Stops the daemons by their pid files: radosgw, then the OSD, then the monitor (and a manager if
# someone started one). Waits for each to exit; SIGKILL after 20 s.
stop_daemons() {
    local name pid i
    for name in client.rgw.a mgr.a osd.0 mon.a; do
        [[ -f "$DIR/run/$name.pid" ]] || continue
        pid=$(cat "$DIR/run/$name.pid" 2>/dev/null || true)
        [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 80; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name ($pid) did not stop on SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

stop() {
    stop_daemons
    rm -rf "$DIR"
    say "stopped"
}

status() {
    if answering; then
        echo "running on $ENDPOINT"
        return 0
    fi
    echo "not running (no answer on $ENDPOINT)"
    return 1
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
env)
    echo "export AWS_ACCESS_KEY_ID=$ACCESS_KEY"
    echo "export AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
    echo "export CDSFS_S3_ENDPOINT=$ENDPOINT"
    ;;
*)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# bench/reload.sh: hot reload under full load. wrk keeps tollgate, nginx and HAProxy busy for
# DURATION seconds twice, once alone and once while the certificate is swapped every
# RELOAD_INTERVAL seconds (tollgate reload / nginx -s reload / HAProxy runtime API or -sf);
# prints one markdown table: requests/s, p99 and wrk's error count with and without reloads.
#
#   bench/reload.sh          the comparison (about 2 x DURATION per server, plus warm-ups)
#   bench/reload.sh leak     tollgate alone: LEAK_RELOADS reloads under light load; open fds and
#                            VmRSS at start, after LEAK_WARMUP reloads, and at the end
#
# Environment knobs (defaults in brackets):
#   SERVERS ["tollgate nginx haproxy"]   DURATION [30] seconds of each wrk run
#   RELOAD_INTERVAL [0.1] seconds between reload starts (one at a time, never overlapping)
#   HAPROXY_RELOAD [api]  api: `set ssl cert` + `commit ssl cert` on the stats socket;
#                         sf: a new process each time, `haproxy -D -x SOCKET -sf OLDPID`
#   WRK_CONNS [64] WRK_THREADS [1]  PORT [18543] (leak mode also PORT+1) BACKEND_PORT [18180]
#   SERVER_CPU [0] CLIENT_CPU [1] (taskset lists)  RELOAD_CPU [CLIENT_CPU] where the reload
#   commands run   BUILD_DIR [build]  KEEP_TMP [0]
#   LEAK_RELOADS [500] LEAK_WARMUP [50] LEAK_CONNS [8] LEAK_INTERVAL [0.02]
#   SETTLE [45] seconds to wait for tollgate's descriptors to come back once the load stops
#   (idle connections to the backend are closed after 30 s)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh" # BUILD_DIR, SERVER_CPU, CLIENT_CPU, WRK_*, KEEP_TMP, and what the benches share
COUNT_REAPED=1 # the server's CPU includes its children gone meanwhile (nginx's old workers)
MODE=${1:-compare}
SERVERS=${SERVERS:-tollgate nginx haproxy}
DURATION=${DURATION:-30}
RELOAD_INTERVAL=${RELOAD_INTERVAL:-0.1}
HAPROXY_RELOAD=${HAPROXY_RELOAD:-api}
PORT=${PORT:-18543}
BACKEND_PORT=${BACKEND_PORT:-18180}
RELOAD_CPU=${RELOAD_CPU:-}
LEAK_RELOADS=${LEAK_RELOADS:-500}
LEAK_WARMUP=${LEAK_WARMUP:-50}
LEAK_CONNS=${LEAK_CONNS:-8}
LEAK_INTERVAL=${LEAK_INTERVAL:-0.02}
SETTLE=${SETTLE:-45}

case $MODE in compare | leak) ;; -h | --help | help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; *) die "usage: $0 [compare|leak]" ;; esac
[[ $MODE = leak ]] && SERVERS=tollgate
for s in $SERVERS; do
  case $s in tollgate | nginx | haproxy) ;; *) die "unknown server '$s' in SERVERS" ;; esac
done
case $HAPROXY_RELOAD in api | sf) ;; *) die "HAPROXY_RELOAD is api or sf" ;; esac
# seconds (decimal) to nanoseconds, without floating point in bash
to_ns() { awk -v s="$1" 'BEGIN { if (s !~ /^[0-9]*\.?[0-9]+$/) exit 1; printf "%d", s * 1e9 }'; }
INTERVAL_NS=$(to_ns "$RELOAD_INTERVAL") || die "RELOAD_INTERVAL is a number of seconds"
LEAK_INTERVAL_NS=$(to_ns "$LEAK_INTERVAL") || die "LEAK_INTERVAL is a number of seconds"
[[ $DURATION =~ ^[0-9]+$ ]] && ((DURATION >= 1)) || die "DURATION is a whole number of seconds"
((INTERVAL_NS >= 1000000)) || die "RELOAD_INTERVAL is at least 0.001"
((LEAK_RELOADS % 2 == 0 && LEAK_WARMUP % 2 == 0 && LEAK_WARMUP < LEAK_RELOADS)) ||
  die "LEAK_RELOADS and LEAK_WARMUP are even (the configuration alternates), LEAK_WARMUP < LEAK_RELOADS"

for cmd in wrk taskset openssl awk; do command -v $cmd >/dev/null || die "$cmd is not installed"; done
[[ " $SERVERS " = *" nginx "* ]] && { command -v nginx >/dev/null || die "nginx is not installed (apt-get install nginx-light)"; }
[[ " $SERVERS " = *" haproxy "* ]] && { command -v haproxy >/dev/null || die "haproxy is not installed"; }
[[ " $SERVERS " = *" haproxy "* && $HAPROXY_RELOAD = api ]] && { command -v python3 >/dev/null || die "python3 is needed for HAProxy's runtime API"; }
check_nproc
RELOAD_CPU=${RELOAD_CPU:-$CLIENT_CPU}
CPUS=$(cpu_set "$SERVER_CPU" "$CLIENT_CPU" "$RELOAD_CPU")

# ---- build what is missing ----
build_missing backend
TOLLGATE=$BUILD/tollgate

ulimit -Sn "$(ulimit -Hn)" 2>/dev/null
make_tmp tollgate-reload # STARTED: every pid this script started (servers, backend, wrk, reloaders)

for p in "$PORT" "$((PORT + 1))" "$BACKEND_PORT"; do port_open "$p" && die "127.0.0.1:$p is already in use"; done
sleep_ns() { (($1 > 0)) && sleep "$(($1 / 1000000000)).$(printf '%09d' $(($1 % 1000000000)))"; return 0; }

# ---- throwaway PKI: one P-256 CA, two P-256 leaves "a" and "b" for localhost ----
make_pki() {
  local d=$TMP/pki c
  pki_server_ext digitalSignature
  pki_ca ca "/CN=tollgate reload bench CA" || die "openssl failed to make the CA"
  for c in a b; do
    pki_leaf "$c" ca "/CN=localhost ($c)" leaf.ext || die "openssl failed to make certificate $c"
    cat "$d/$c.crt" "$d/$c.key" >"$d/$c.pem" # HAProxy wants both in one file
    FP[$c]=$(openssl x509 -in "$d/$c.crt" -noout -fingerprint -sha256 | sed 's/.*=//')
  done
}
served_fp() { # the SHA-256 fingerprint of the certificate a new handshake gets
  openssl s_client -connect "127.0.0.1:$PORT" -servername localhost </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//'
}

# ---- configurations: nginx and HAProxy as bench/lib.sh sets them up for run.sh too (TLS 1.2 +
# 1.3, the suites of tls_cipher_policy_1_2_strict_with_1_3, one worker, no access log,
# keep-alive both sides); each in two variants, "a" and "b", that differ in the certificate ----
tollgate_conf() { # dir cert extra-listener(0|1)
  local d=$1 c=$2 pki=$TMP/pki
  tollgate_global "$d" 5s
  cat <<EOF
certificates:
  a:
    type: server
    cert: $pki/a.crt
    key: $pki/a.key
  b:
    type: server
    cert: $pki/b.crt
    key: $pki/b.key
EOF
  tollgate_bench_listener "$c"
  (($3)) && cat <<EOF
  extra:
    protocol: https
    listen: "127.0.0.1:$((PORT + 1))"
    backend: app
    certificates:
      default: $c
EOF
  return 0
}

write_configs() { # server
  local s=$1 d=$TMP/$1 c pem
  mkdir -p "$d/store"
  for c in a b; do
    case $s in
    tollgate) tollgate_conf "$d" "$c" "$([[ $MODE = leak && $c = b ]] && echo 1 || echo 0)" >"$d/tollgate-$c.yaml" ;;
    nginx) nginx_conf "$d" "$c" 4096 >"$d/nginx-$c.conf" ;;
    haproxy)
      if [[ $HAPROXY_RELOAD = api ]]; then
        cp "$TMP/pki/a.pem" "$d/site.pem" # one name; the API swaps what is behind it
        pem=$d/site.pem
      else
        pem=$TMP/pki/$c.pem
      fi
      haproxy_conf "$d" "$pem" 4096 "  stats socket $d/admin.sock mode 600 level admin expose-fd listeners
  hard-stop-after 30s" >"$d/haproxy-$c.cfg"
      ;;
    esac
  done
  use_config "$s" a
}
conf_file() { case $1 in tollgate) echo "$TMP/$1/tollgate.yaml" ;; nginx) echo "$TMP/$1/nginx.conf" ;; haproxy) echo "$TMP/$1/haproxy.cfg" ;; esac; }
declare -A CONF LIVE
use_config() { # server a|b: the live configuration file becomes variant a or b (atomically;
  # bash builtins and one mv, so that a reload costs the client CPU little beyond the command)
  local s=$1 c=$2 live ext
  if [[ -z ${LIVE[$s]:-} ]]; then
    LIVE[$s]=$(conf_file "$s")
    ext=${LIVE[$s]##*.}
    CONF[$s:a]=$(<"$TMP/$s/$s-a.$ext")
    CONF[$s:b]=$(<"$TMP/$s/$s-b.$ext")
  fi
  live=${LIVE[$s]}
  printf '%s\n' "${CONF[$s:$c]}" >"$live.tmp" && mv -f "$live.tmp" "$live"
}

# ---- servers (stop_server replaces bench/lib.sh's) ----
HAPROXY_PIDS=() # sf mode: every haproxy process started by a reload
server_pids() { # the server's processes (nginx: master and workers; haproxy sf: all generations)
  local roots=("${HAPROXY_PIDS[@]}")
  [[ -n $SERVER_PID ]] && roots+=("$SERVER_PID")
  [[ -s $TMP/haproxy/haproxy-pids ]] && mapfile -t -O "${#roots[@]}" roots <"$TMP/haproxy/haproxy-pids"
  proc_tree "${roots[@]}" | sort -un
}
start_server() { # server
  local s=$1 d=$TMP/$1 i
  port_open "$PORT" && { log "$s: port $PORT is still taken"; return 1; }
  use_config "$s" a
  case $s in
  tollgate) taskset -c "$SERVER_CPU" "$TOLLGATE" run -c "$d/tollgate.yaml" >>"$d/server.log" 2>&1 & ;;
  nginx) taskset -c "$SERVER_CPU" nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" >>"$d/server.log" 2>&1 & ;;
  haproxy)
    if [[ $HAPROXY_RELOAD = api ]]; then
      taskset -c "$SERVER_CPU" haproxy -f "$d/haproxy.cfg" -db >>"$d/server.log" 2>&1 &
    else
      rm -f "$d/haproxy.pid"
      taskset -c "$SERVER_CPU" haproxy -f "$d/haproxy.cfg" -D -p "$d/haproxy.pid" >>"$d/server.log" 2>&1
      for ((i = 0; i < 50; i++)); do [[ -s $d/haproxy.pid ]] && break; sleep 0.1; done
    fi
    ;;
  esac
  if [[ $s = haproxy && $HAPROXY_RELOAD = sf ]]; then
    SERVER_PID=$(head -1 "$d/haproxy.pid" 2>/dev/null)
    [[ -n $SERVER_PID ]] && HAPROXY_PIDS+=("$SERVER_PID")
  else
    SERVER_PID=$!
  fi
  [[ -n $SERVER_PID ]] && STARTED+=("$SERVER_PID")
  for ((i = 0; i < 100; i++)); do
    port_open "$PORT" && return 0
    [[ -n $SERVER_PID ]] && alive "$SERVER_PID" || break
    sleep 0.1
  done
  log "$s did not start; its output:"
  tail -n 20 "$d/server.log" "$d/error.log" 2>/dev/null >&2
  stop_server
  return 1
}
stop_server() {
  local p
  for p in $SERVER_PID "${HAPROXY_PIDS[@]}" $(cat "$TMP/haproxy/haproxy-pids" 2>/dev/null); do
    stop_pid "$p"
    forget_pid "$p"
  done
  rm -f "$TMP/haproxy/haproxy-pids"
  SERVER_PID=
  HAPROXY_PIDS=()
  for ((p = 0; p < 50; p++)); do port_open "$PORT" || break; sleep 0.1; done
}
at_exit() { stop_server; } # the EXIT trap: haproxy -sf generations are not all in STARTED
per_cpu() { awk -v r="$1" -v c="$2" 'BEGIN { if (r != "" && c > 0) printf "%.0f", r * 100 / c; else printf "-" }'; }

# ---- reloading ----
reload_once() { # server a|b: one reload to certificate a or b; 0 when the server took it
  local s=$1 c=$2 d=$TMP/$1 old new i
  case $s in
  tollgate)
    use_config tollgate "$c"
    "$TOLLGATE" reload -c "$d/tollgate.yaml" >>"$d/reload.log" 2>&1
    ;;
  nginx)
    use_config nginx "$c"
    nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" -s reload >>"$d/reload.log" 2>&1
    ;;
  haproxy) # sf mode only (api mode runs its own loop, below)
    use_config haproxy "$c"
    old=$(cat "$d/haproxy.pid" 2>/dev/null)
    taskset -c "$SERVER_CPU" haproxy -f "$d/haproxy.cfg" -D -p "$d/haproxy.pid" -x "$d/admin.sock" -sf $old >>"$d/reload.log" 2>&1 || return 1
    new=$(head -1 "$d/haproxy.pid" 2>/dev/null)
    [[ -n $new && $new != "${old%%[[:space:]]*}" ]] || return 1
    echo "$new" >>"$d/haproxy-pids"
    ;;
  esac
}

# HAProxy's runtime API: one python process for the whole run (not one a reload, which would
# take the client CPU from wrk). Same pacing as reloader().
haproxy_api_reloader() { # count interval_ns out
  python3 - "$TMP/haproxy/admin.sock" "$TMP/haproxy/site.pem" "$TMP/pki/a.pem" "$TMP/pki/b.pem" "$1" "$2" "$3" <<'EOF'
import socket, sys, time
sock, name, a, b, count, interval_ns, out = sys.argv[1:8]
pems = [open(a).read(), open(b).read()]
def cmd(text):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock)
    s.sendall(text.encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return data.decode(errors="replace")
ok = fail = 0
t0 = time.monotonic_ns()
for i in range(1, int(count) + 1):
    delay = t0 + i * int(interval_ns) - time.monotonic_ns()
    if delay > 0:
        time.sleep(delay / 1e9)
    pem = pems[i % 2]  # odd: b, even: a (as reloader)
    try:
        r1 = cmd("set ssl cert %s <<\n%s\n" % (name, pem.strip() + "\n"))
        r2 = cmd("commit ssl cert %s\n" % name)
        if "Success" in r2 and "rror" not in r1:
            ok += 1
        else:
            fail += 1
            sys.stderr.write("reload %d: %r %r\n" % (i, r1, r2))
    except OSError as e:
        fail += 1
        sys.stderr.write("reload %d: %s\n" % (i, e))
open(out, "w").write("%d %d\n" % (ok, fail))
EOF
}

reloader() { # server count interval_ns out: COUNT reloads, one every INTERVAL (never two at once)
  local s=$1 n=$2 iv=$3 out=$4 i ok=0 fail=0 t0 c
  if [[ $s = haproxy && $HAPROXY_RELOAD = api ]]; then
    haproxy_api_reloader "$n" "$iv" "$out" 2>>"$TMP/haproxy/reload.log"
    return
  fi
  t0=$(now_ns)
  for ((i = 1; i <= n; i++)); do
    sleep_ns $((t0 + i * iv - $(now_ns)))
    c=a
    ((i % 2)) && c=b
    if reload_once "$s" "$c"; then ok=$((ok + 1)); else fail=$((fail + 1)); fi
  done
  echo "$ok $fail" >"$out"
}
last_cert() { (($1 % 2)) && echo b || echo a; } # the certificate of reload number N

# ---- wrk ----
run_wrk() { # out-file [duration]
  timeout $((${2:-$DURATION} + 30)) taskset -c "$CLIENT_CPU" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${2:-$DURATION}s" --latency \
    "https://127.0.0.1:$PORT/" >"$1" 2>&1
}

declare -A RES FP
NOTES=()
PROBLEMS=()

bench_server() { # server
  local s=$1 d=$TMP/$1 vals n pid done_ok done_fail fp want f0 f1 c0 c1 t0 t1 i
  start_server "$s" || { PROBLEMS+=("$s did not start"); return 1; }
  timeout 40 taskset -c "$CLIENT_CPU" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d2s "https://127.0.0.1:$PORT/" >/dev/null 2>&1 # warm-up
  log "$s: ${DURATION}s of wrk without reloads"
  mark
  c0=$(cpu_ticks) t0=$(now_ns)
  run_wrk "$d/wrk-plain.txt"
  c1=$(cpu_ticks) t1=$(now_ns)
  f0=$(foreign_pct)
  RES[$s:cpu0]=$(cpu_pct "$c0" "$c1" "$t0" "$t1" 0)
  if vals=$(parse_wrk "$d/wrk-plain.txt"); then
    read -r RES[$s:rps0] _ RES[$s:p99_0] RES[$s:err0] _ <<<"$vals"
    RES[$s:detail0]=$vals
  else
    PROBLEMS+=("$s: wrk failed without reloads: $(tail -2 "$d/wrk-plain.txt" | tr '\n' ' ')")
  fi
  n=$(awk -v d="$DURATION" -v i="$INTERVAL_NS" 'BEGIN { printf "%d", d * 1e9 / i }')
  log "$s: ${DURATION}s of wrk with $n reloads, one every ${RELOAD_INTERVAL}s"
  rm -f "$d/reloads.txt"
  mark
  # the reloader runs on RELOAD_CPU (the client's), and so do the commands it starts
  (taskset -cp "$RELOAD_CPU" $BASHPID >/dev/null 2>&1; reloader "$s" "$n" "$INTERVAL_NS" "$d/reloads.txt") &
  pid=$!
  STARTED+=("$pid")
  c0=$(cpu_ticks) t0=$(now_ns)
  run_wrk "$d/wrk-reload.txt"
  c1=$(cpu_ticks) t1=$(now_ns)
  f1=$(foreign_pct)
  RES[$s:cpu1]=$(cpu_pct "$c0" "$c1" "$t0" "$t1" 0)
  for ((i = 0; i < 300; i++)); do alive "$pid" || break; sleep 0.1; done # it ends with wrk; 30 s at most more
  alive "$pid" && { PROBLEMS+=("$s: the reloader was still running 30 s after wrk ended: stopped"); stop_pid "$pid"; }
  wait "$pid" 2>/dev/null
  forget_pid "$pid"
  read -r done_ok done_fail <"$d/reloads.txt" 2>/dev/null || { done_ok=0; done_fail=$n; }
  RES[$s:reloads]="$done_ok/$n"
  ((done_fail > 0)) && PROBLEMS+=("$s: $done_fail of $n reloads failed: $(tail -3 "$d/reload.log" 2>/dev/null | tr '\n' ' ')")
  if vals=$(parse_wrk "$d/wrk-reload.txt"); then
    read -r RES[$s:rps1] _ RES[$s:p99_1] RES[$s:err1] _ <<<"$vals"
    RES[$s:detail1]=$vals
  else
    PROBLEMS+=("$s: wrk failed with reloads: $(tail -2 "$d/wrk-reload.txt" | tr '\n' ' ')")
  fi
  sleep 0.5
  fp=$(served_fp)
  want=${FP[$(last_cert "$n")]}
  if [[ -n $fp && $fp = "$want" ]]; then RES[$s:swapped]=yes; else RES[$s:swapped]=NO; PROBLEMS+=("$s: after the last reload a new handshake got ${fp:-nothing}, not certificate $(last_cert "$n") ($want)"); fi
  NOTES+=("$s: server CPU ${RES[$s:cpu0]}% / ${RES[$s:cpu1]}% of a core, $(per_cpu "${RES[$s:rps0]:-}" "${RES[$s:cpu0]}") / $(per_cpu "${RES[$s:rps1]:-}" "${RES[$s:cpu1]}") requests per server CPU-second; other processes took ${f0}% / ${f1}% of a core on CPUs $CPUS (without / with reloads)")
  stop_server
}

kinds() { awk '{ printf "%s/%s/%s/%s/%s", $5, $6, $7, $8, $9 }' <<<"${RES[$1:$2]:-}"; } # parse_wrk's connect/read/write/timeout/non-2xx
print_table() {
  local s method verdict ratio e0 e1
  printf '\n### Hot reload under load: wrk -t%s -c%s, %ss each, a certificate swap every %ss (server on CPU %s, wrk and backend on %s, reload commands on %s)\n\n' \
    "$WRK_THREADS" "$WRK_CONNS" "$DURATION" "$RELOAD_INTERVAL" "$SERVER_CPU" "$CLIENT_CPU" "$RELOAD_CPU"
  echo "| server | reload by | reloads done | req/s without | req/s with reloads | p99 without (ms) | p99 with reloads (ms) | p99 with/without | errors without | errors with reloads | new cert served | target: 0 errors, p99 ≤ 2× |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
  for s in $SERVERS; do
    case $s in
    tollgate) method='`tollgate reload`' ;;
    nginx) method='`nginx -s reload`' ;;
    haproxy) [[ $HAPROXY_RELOAD = api ]] && method='`set ssl cert` + `commit ssl cert`' || method='`-sf` (new process, `-x`)' ;;
    esac
    ratio=$(awk -v a="${RES[$s:p99_1]:-}" -v b="${RES[$s:p99_0]:-}" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else printf "-" }')
    verdict=-
    if [[ -n ${RES[$s:err1]:-} && $ratio != - ]]; then
      e0=${RES[$s:err0]:-1} e1=${RES[$s:err1]}
      if ((e0 == 0 && e1 == 0)) && awk -v r="$ratio" 'BEGIN { exit !(r <= 2) }'; then verdict=met; else verdict=MISSED; fi
    fi
    echo "| $s | $method | ${RES[$s:reloads]:--} | $(fmt 0 "${RES[$s:rps0]:-}") | $(fmt 0 "${RES[$s:rps1]:-}") | $(fmt 2 "${RES[$s:p99_0]:-}") | $(fmt 2 "${RES[$s:p99_1]:-}") | $ratio | ${RES[$s:err0]:--} | ${RES[$s:err1]:--} | ${RES[$s:swapped]:--} | $verdict |"
  done
  echo
  echo "errors: wrk's \"Socket errors\" (connect + read + write + timeout) plus \"Non-2xx or 3xx responses\". By kind (connect/read/write/timeout/non-2xx), without → with reloads:"
  for s in $SERVERS; do echo "- $s: $(kinds "$s" detail0) → $(kinds "$s" detail1)"; done
  echo
  for n in "${NOTES[@]}"; do echo "- $n"; done
  print_problems "Problems during the runs" "${PROBLEMS[@]}"
}

# ---- leak mode: LEAK_RELOADS reloads of tollgate under light load ----
fd_count() { ls "/proc/$SERVER_PID/fd" 2>/dev/null | wc -l; }
settle() { # fds: wait up to SETTLE s for the descriptor count to come back to FDS; prints the seconds waited
  local want=$1 t0=$SECONDS
  while (($(fd_count) != want && SECONDS - t0 < SETTLE)); do sleep 0.5; done
  echo $((SECONDS - t0))
}
leak_phase() { # from to: reloads FROM+1..TO back to back (LEAK_INTERVAL apart) under wrk -cLEAK_CONNS
  local from=$1 to=$2 d=$TMP/tollgate i c ok=0 fail=0 wpid t0
  timeout 3600 taskset -c "$CLIENT_CPU" wrk -t1 -c"$LEAK_CONNS" -d3600s "https://127.0.0.1:$PORT/" >"$d/wrk-leak-$to.txt" 2>&1 &
  wpid=$!
  STARTED+=("$wpid")
  sleep 1
  t0=$(now_ns)
  for ((i = from + 1; i <= to; i++)); do
    sleep_ns $((t0 + (i - from) * LEAK_INTERVAL_NS - $(now_ns)))
    c=a
    ((i % 2)) && c=b # odd: b (with the second listener), even: a (as at the start)
    if reload_once tollgate "$c"; then ok=$((ok + 1)); else fail=$((fail + 1)); fi
  done
  kill -INT "$wpid" 2>/dev/null # wrk prints its summary on SIGINT
  for ((i = 0; i < 100; i++)); do alive "$wpid" || break; sleep 0.1; done
  stop_pid "$wpid"
  forget_pid "$wpid"
  ((fail > 0)) && PROBLEMS+=("$fail of $((to - from)) reloads failed: $(tail -3 "$d/reload.log" | tr '\n' ' ')")
  local vals
  vals=$(parse_wrk "$d/wrk-leak-$to.txt") && LEAK_LOAD+=("reloads $((from + 1))-$to: $(awk '{ printf "%s req/s, %d errors", $1, $4 }' <<<"$vals")")
}

leak() {
  local fd0 rss0 fd1 rss1 fd2 rss2 w1 w2 s=tollgate
  LEAK_LOAD=()
  start_server tollgate || die "tollgate did not start: $(tail -5 "$TMP/tollgate/server.log")"
  sleep 0.5
  fd0=$(fd_count) rss0=$(rss_kib)
  log "tollgate: start: $fd0 fds, VmRSS $rss0 KiB; $LEAK_WARMUP warm-up reloads under wrk -c$LEAK_CONNS"
  leak_phase 0 "$LEAK_WARMUP"
  w1=$(settle "$fd0")
  fd1=$(fd_count) rss1=$(rss_kib)
  log "tollgate: after warm-up: $fd1 fds, VmRSS $rss1 KiB; $((LEAK_RELOADS - LEAK_WARMUP)) more reloads"
  leak_phase "$LEAK_WARMUP" "$LEAK_RELOADS"
  w2=$(settle "$fd0")
  fd2=$(fd_count) rss2=$(rss_kib)
  local fp want=${FP[a]}
  fp=$(served_fp)
  printf '\n### tollgate: %s reloads under wrk -c%s, certificate a/b and a second listener on/off at each reload\n\n' "$LEAK_RELOADS" "$LEAK_CONNS"
  echo "| point | reloads | open fds | VmRSS (KiB) | waited for connections to close (s) |"
  echo "|---|---:|---:|---:|---:|"
  echo "| start | 0 | $fd0 | $rss0 | - |"
  echo "| after warm-up | $LEAK_WARMUP | $fd1 | $rss1 | $w1 |"
  echo "| end | $LEAK_RELOADS | $fd2 | $rss2 | $w2 |"
  echo
  local fdv rssv
  ((fd2 == fd0)) && fdv=met || fdv=MISSED
  awk -v a="$rss2" -v b="$rss1" 'BEGIN { exit !(a <= b * 1.10) }' && rssv=met || rssv=MISSED
  echo "- open fds at the end = at start: $fdv ($fd2 vs $fd0)"
  echo "- VmRSS at the end within 10% of after warm-up: $rssv ($(awk -v a="$rss2" -v b="$rss1" 'BEGIN { printf "%+.1f%%", (a - b) * 100 / b }'))"
  echo "- certificate served at the end is a (the last reload's): $([[ $fp = "$want" ]] && echo yes || echo NO)"
  for l in "${LEAK_LOAD[@]}"; do echo "- load during $l"; done
  print_problems "Problems during the run" "${PROBLEMS[@]}"
  stop_server
}

# ---- main ----
if [[ $MODE = leak ]]; then
  log "mode leak: $LEAK_RELOADS reloads of tollgate ($LEAK_WARMUP warm-up), ${LEAK_INTERVAL}s apart, under wrk -c$LEAK_CONNS; server on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU; temp $TMP"
else
  log "servers: $SERVERS; wrk ${DURATION}s without, then with a reload every ${RELOAD_INTERVAL}s; server on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU; temp $TMP"
fi
make_pki
for s in $SERVERS; do write_configs "$s"; done
start_backend

if [[ $MODE = leak ]]; then
  leak
else
  for s in $SERVERS; do bench_server "$s"; done
  print_table
fi

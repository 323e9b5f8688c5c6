#!/usr/bin/env bash
# bench/h3.sh: HTTP/3 comparison, tollgate vs Caddy, each a QUIC (and HTTPS) terminator in front
# of the same small backend; prints one markdown table of medians and ratios. See bench/README.md.
#
# Environment knobs (defaults in brackets):
#   SERVERS ["tollgate caddy"]  which servers to measure, in this order
#   RUNS [3]            runs of each measurement; the table shows medians
#   DURATION [10]       seconds of each keep-alive run (HTTP/3 with h3load, HTTPS with wrk)
#   HS_DURATION [5]     seconds of each new-connection (full handshake) run
#   H3_CONNS [16] H3_STREAMS [8]  h3load connections x concurrent streams, keep-alive row
#   HS_CONNS [64]       h3load connections of the handshake row (one request each, then a new one)
#   HS_VERIFY [0]       1: h3load verifies the certificate chain in the handshake row too (it
#                       always checks the CertificateVerify signature; chain checking costs
#                       the client ~0.3 ms a handshake, about as much as the rest of it)
#   H3_THREADS [CPUs in CLIENT_CPU]  h3load threads
#   WRK_CONNS [64] WRK_THREADS [1]   wrk, for the HTTPS keep-alive row
#   HTTPS [all]         the HTTPS row for "all" servers, "tollgate" only, or "off"
#   PORT, BACKEND_PORT [free ports picked at random in 20000-29999]; the server listens on
#                       PORT for both TCP (HTTPS) and UDP (QUIC)
#   SERVER_CPU [0]  CLIENT_CPU [1] (a taskset list, e.g. 1-3)
#   BUILD_DIR [build]   where tollgate and bench/* are (built if missing)
#   KEEP_TMP [0]        1 keeps the temporary directory (configs, logs, raw tool output)
#   QUIET_WAIT [60]     before each measurement, wait up to this many seconds for other
#                       processes to leave the CPUs (0: don't wait)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh" # BUILD_DIR, SERVER_CPU, CLIENT_CPU, WRK_*, KEEP_TMP, and what the benches share
UDP_TOO=1 # the server listens on PORT over TCP and UDP
SERVERS=${SERVERS:-tollgate caddy}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
HS_DURATION=${HS_DURATION:-5}
H3_CONNS=${H3_CONNS:-16}
H3_STREAMS=${H3_STREAMS:-8}
HS_CONNS=${HS_CONNS:-64}
HS_VERIFY=${HS_VERIFY:-0}
HTTPS=${HTTPS:-all}
PORT=${PORT:-}
BACKEND_PORT=${BACKEND_PORT:-}
QUIET_WAIT=${QUIET_WAIT:-60}
BODY=13 # the backend's answer, "hello world!\n"

for s in $SERVERS; do
  case $s in tollgate | caddy) ;; *) die "unknown server '$s' in SERVERS (tollgate, caddy)" ;; esac
done
case $HTTPS in all | tollgate | off) ;; *) die "HTTPS is all, tollgate or off" ;; esac
for v in RUNS DURATION HS_DURATION H3_CONNS H3_STREAMS HS_CONNS WRK_CONNS WRK_THREADS QUIET_WAIT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number"
done
((RUNS >= 1 && DURATION >= 1 && HS_DURATION >= 1)) || die "RUNS, DURATION and HS_DURATION must be at least 1"
for cmd in taskset openssl awk; do command -v $cmd >/dev/null || die "$cmd is not installed"; done
[[ $HTTPS != off ]] && { command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk), or set HTTPS=off"; }
[[ " $SERVERS " = *" caddy "* ]] && { command -v caddy >/dev/null || die "caddy is not installed (apt-get install caddy)"; }
check_nproc
CPUS=$(cpu_set "$SERVER_CPU" "$CLIENT_CPU")
H3_THREADS=${H3_THREADS:-$(cpu_list "$CLIENT_CPU" | wc -l)}
CCPUS=$(cpu_set "$CLIENT_CPU")
NCCPUS=$(wc -w <<<"$CCPUS")
((H3_THREADS <= H3_CONNS && H3_THREADS <= HS_CONNS)) || die "H3_THREADS ($H3_THREADS) is more than H3_CONNS or HS_CONNS"

# ---- build what is missing ----
build_missing "backend h3load"
warn_build_type
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null

make_tmp tollgate-h3bench
pick_ports

# ---- throwaway PKI: a P-256 CA signing a P-256 leaf for localhost and 127.0.0.1 ----
make_pki() {
  pki_server_ext
  pki_ca ca "/CN=tollgate bench ecdsa CA" && pki_leaf srv ca /CN=localhost leaf.ext || die "openssl failed to make the PKI"
}

# ---- configurations: the same certificate, TLS 1.3 over QUIC (h3) and TLS 1.2/1.3 over TCP
# on the same port number, one worker, no access log, keep-alive to the backend ----
write_configs() { # server
  local s=$1 d=$TMP/$1 pki=$TMP/pki
  mkdir -p "$d"
  case $s in
  tollgate)
    mkdir -p "$d/store"
    {
      tollgate_global "$d" 2s
      cat <<EOF
certificates:
  srv:
    type: server
    cert: $pki/srv.crt
    key: $pki/srv.key
backends:
  app:
    servers: [127.0.0.1:$BACKEND_PORT]
listeners:
  h3:
    protocol: quic
    listen: "127.0.0.1:$PORT"
    backend: app
    certificates: { default: srv }
  https:
    protocol: https
    listen: "127.0.0.1:$PORT"
    backend: app
    security_policy: tls_cipher_policy_1_2_strict_with_1_3
    certificates: { default: srv }
EOF
    } >"$d/tollgate.yaml"
    ;;
  caddy)
    # admin off, no logs, no redirect server on :80, no trust-store changes; h1 h2 h3 on one
    # port (TCP + UDP); reverse_proxy keeps up to 1024 idle backend connections (Caddy's
    # default of 32 a host makes it open and close a backend connection for most requests
    # when more than 32 are in flight, which would measure its pool, not its HTTP/3).
    cat >"$d/Caddyfile" <<EOF
{
	admin off
	skip_install_trust
	auto_https disable_redirects
	storage file_system $d/data
	servers {
		protocols h1 h2 h3
	}
	log {
		output discard
	}
}
https://:$PORT {
	bind 127.0.0.1
	tls $pki/srv.crt $pki/srv.key
	reverse_proxy 127.0.0.1:$BACKEND_PORT {
		transport http {
			keepalive 300s
			keepalive_idle_conns 1024
			keepalive_idle_conns_per_host 1024
		}
	}
}
EOF
    ;;
  esac
}

# ---- processes ----
start_server() { # server: starts it pinned to SERVER_CPU, waits for its TCP and UDP ports
  local s=$1 d=$TMP/$1 i
  port_open "$PORT" && { log "$s: TCP port $PORT is still taken"; return 1; }
  udp_bound "$PORT" && { log "$s: UDP port $PORT is still taken"; return 1; }
  case $s in
  tollgate) taskset -c "$SERVER_CPU" "$BUILD/tollgate" run -c "$d/tollgate.yaml" >>"$d/server.log" 2>&1 & ;;
  caddy) # Go: one P for the one CPU; its own HOME so it writes nothing outside TMP
    HOME=$d XDG_DATA_HOME=$d/data XDG_CONFIG_HOME=$d/config GOMAXPROCS=1 \
      taskset -c "$SERVER_CPU" caddy run --adapter caddyfile --config "$d/Caddyfile" >>"$d/server.log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  STARTED+=("$SERVER_PID")
  SERVER_NAME=$s
  SERVER_LOG=$d/server.log
  for ((i = 0; i < 100; i++)); do
    udp_bound "$PORT" && port_open "$PORT" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SERVER_PID" 2>/dev/null && port_open "$PORT"; then
    log "$s listens on TCP port $PORT but has no UDP socket on it after 10 s: it does not serve QUIC"
  else
    log "$s did not start; its output:"
  fi
  tail -n 20 "$d/server.log" >&2
  stop_server
  return 1
}

# ---- the client side: CPU of the load tools and the backend (client_ticks: bench/lib.sh), idle CPU ----
idle_ticks() { # idle + iowait ticks of the client CPUs (/proc/stat)
  awk -v cpus="$CCPUS" 'BEGIN { n = split(cpus, c, " "); for (i = 1; i <= n; i++) want["cpu" c[i]] = 1 }
    $1 in want { s += $5 + $6 } END { print s }' /proc/stat
}
idle_pct() { # ticks0 ticks1 ns0 ns1: idle share of the client CPUs, in % of their time
  awk -v a="$1" -v b="$2" -v t0="$3" -v t1="$4" -v hz="$CLK_TCK" -v n="$NCCPUS" 'BEGIN { printf "%.1f", (b - a) / hz / ((t1 - t0) / 1e9) / n * 100 }'
}

# ---- results: RES[server:metric:run]; NOISY[server:group:run] marks a disturbed measurement ----
declare -A RES NOISY FOREIGN SESSION HEADS ERRCOUNT
ERRORS=()
H3=("$BENCH/h3load" --cacert "$TMP/pki/ca.crt" --sni localhost)
# The handshake row: like hsload in run.sh, no chain verification unless HS_VERIFY=1.
H3HS=("$BENCH/h3load" --insecure --sni localhost)
[[ $HS_VERIFY = 1 ]] && H3HS=("${H3[@]}")
URL=https://127.0.0.1:$PORT

# Values of h3load's "result:" line (key=value), plus the 2xx count and the body bytes.
h3_vals() { # file key...: prints the values in that order, or fails
  local file=$1
  shift
  awk -v keys="$*" '
    $1 == "result:" { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }; ok = 1 }
    $1 == "requests:" && match($0, /\(2xx [0-9]+/) { v["ok"] = substr($0, RSTART + 5, RLENGTH - 5) }
    $1 == "handshakes:" { v["hs"] = $2; if (match($0, /p50 [0-9.]+/)) v["hs_p50"] = substr($0, RSTART + 4, RLENGTH - 4)
      if (match($0, /p99 [0-9.]+/)) v["hs_p99"] = substr($0, RSTART + 4, RLENGTH - 4) }
    $1 == "bytes:" && match($0, /bodies [0-9]+/) { v["body"] = substr($0, RSTART + 7, RLENGTH - 7) }
    END { if (!ok) exit 1; n = split(keys, k, " "); for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? " " : ""), (k[i] in v ? v[k[i]] : "?"); print "" }' "$file"
}

# Proof that the server speaks HTTP/3 to h3load and passes each request to the backend: N
# requests over QUIC, each must come back 2xx and show up in the backend's log; then one
# HTTPS request. The backend logs the head of requests for /trace-head...
sanity_check() { # server: 0, or 1 with the reason in ERRORS
  local s=$1 out=$TMP/$1-sanity.txt n=200 seen vals ok body
  timeout 30 taskset -c "$CLIENT_CPU" "${H3[@]}" -n $n -c 4 -m 8 --max-time 20 "$URL/trace-head/h3-$s" >"$out" 2>&1
  SESSION[$s]=$(sed -n 's/^session: //p' "$out")
  vals=$(h3_vals "$out" ok body) || { ERRORS+=("$s: h3load failed against it: $(tail -3 "$out" | tr '\n' ' ')"); return 1; }
  read -r ok body <<<"$vals"
  sleep 0.3
  seen=$(grep -c "^GET /trace-head/h3-$s HTTP/1.1" "$TMP/backend.log")
  if [[ $ok != "$n" || $seen != "$n" || $body != $((n * BODY)) || ${SESSION[$s]} != *"ALPN h3,"* ]]; then
    ERRORS+=("$s: $n HTTP/3 requests: $ok answered 2xx, $seen reached the backend, $body body bytes (want $((n * BODY))), session: ${SESSION[$s]:-none}; h3load: $(grep -E '^(errors|h3load: first)' "$out" | sed 's/^h3load: //' | tr '\n' ' ')")
    return 1
  fi
  HEADS[$s]=$(awk -v p="/trace-head/h3-$s " 'index($0, p) { on = 1 } on && /^\r?$/ { exit } on' "$TMP/backend.log" |
    tr -d '\r' | grep -io '^x-forwarded-[a-z-]*' | tr 'A-Z' 'a-z' | sort | paste -sd ' ')
  log "$s: $n HTTP/3 requests answered and seen by the backend; ${SESSION[$s]}"
  if [[ $(https_row "$s") = 1 ]] && command -v curl >/dev/null; then
    body=$(curl -s --cacert "$TMP/pki/ca.crt" --resolve "localhost:$PORT:127.0.0.1" --max-time 5 "https://localhost:$PORT/trace-head/https-$s")
    [[ $body = "hello world!" ]] || { ERRORS+=("$s: an HTTPS request through it did not return the backend's body"); return 1; }
  fi
  return 0
}
https_row() { [[ $HTTPS = all || ($HTTPS = tollgate && $1 = tollgate) ]] && echo 1 || echo 0; }

count_errors() { # server metric n
  ERRCOUNT[$1:$2]=$((${ERRCOUNT[$1:$2]:-0} + $3))
}

run_h3() { # server run: HTTP/3 requests over kept connections
  local s=$1 r=$2 out=$TMP/$1-h3-$2.txt c0 c1 t0 t1 k0 k1 i0 i1 vals cpu
  local args=(-c "$H3_CONNS" -m "$H3_STREAMS" -t "$H3_THREADS")
  timeout 40 taskset -c "$CLIENT_CPU" "${H3[@]}" "${args[@]}" -D 2 "$URL/" >/dev/null 2>&1 # warm-up
  wait_quiet
  mark
  c0=$(cpu_ticks) t0=$(now_ns) k0=$(client_ticks) i0=$(idle_ticks)
  timeout $((DURATION + 30)) taskset -c "$CLIENT_CPU" "${H3[@]}" "${args[@]}" -D "$DURATION" "$URL/" >"$out" 2>&1
  c1=$(cpu_ticks) t1=$(now_ns) k1=$(client_ticks) i1=$(idle_ticks)
  foreign_since_mark "$s" "$r" h3 "HTTP/3 keep-alive"
  vals=$(h3_vals "$out" req_per_s p50_ms p99_ms conn_errors non2xx reset ok body) || {
    ERRORS+=("$s run $r: h3load failed: $(tail -3 "$out" | tr '\n' ' ')")
    return 1
  }
  local rps p50 p99 ce n2 rs ok body
  read -r rps p50 p99 ce n2 rs ok body <<<"$vals"
  if [[ ${rps%.*} = 0 || $ok = 0 ]]; then
    ERRORS+=("$s run $r: no HTTP/3 request answered: $(grep -m1 'first' "$out")")
    return 1
  fi
  cpu=$(cpu_pct "$c0" "$c1" "$t0" "$t1")
  adds "$s" "$r" h3 rps "$rps" p50 "$p50" p99 "$p99" cpu "$cpu" ccpu "$(cpu_pct "$k0" "$k1" "$t0" "$t1")" \
    cidle "$(idle_pct "$i0" "$i1" "$t0" "$t1")" eff "$(per_cpu_s "$rps" "$cpu")"
  count_errors "$s" h3 $((ce + n2 + rs))
  ((ce + n2 + rs > 0)) && ERRORS+=("$s run $r HTTP/3: $ce connection errors, $n2 non-2xx, $rs reset streams: $(grep -m1 -E '^(h3load: first|errors)' "$out")")
  ((body != ok * BODY)) && ERRORS+=("$s run $r HTTP/3: $body body bytes for $ok 2xx answers (want $((ok * BODY)))")
  log "$s: HTTP/3 $rps req/s, p50 $p50 ms, p99 $p99 ms, server CPU $cpu%, errors $((ce + n2 + rs))"
}

run_hs() { # server run: a new QUIC connection (full handshake) for every request
  local s=$1 r=$2 out=$TMP/$1-hs-$2.txt c0 c1 t0 t1 k0 k1 i0 i1 vals cpu
  wait_quiet
  mark
  c0=$(cpu_ticks) t0=$(now_ns) k0=$(client_ticks) i0=$(idle_ticks)
  timeout $((HS_DURATION + 30)) taskset -c "$CLIENT_CPU" "${H3HS[@]}" --new-conn -c "$HS_CONNS" -t "$H3_THREADS" -D "$HS_DURATION" "$URL/" >"$out" 2>&1
  c1=$(cpu_ticks) t1=$(now_ns) k1=$(client_ticks) i1=$(idle_ticks)
  foreign_since_mark "$s" "$r" hs "QUIC handshakes"
  vals=$(h3_vals "$out" hs_per_s hs_p50 hs_p99 conn_errors non2xx reset ok hs) || {
    ERRORS+=("$s run $r: h3load --new-conn failed: $(tail -3 "$out" | tr '\n' ' ')")
    return 1
  }
  local hps p50 p99 ce n2 rs ok hs
  read -r hps p50 p99 ce n2 rs ok hs <<<"$vals"
  if [[ ${hps%.*} = 0 || $ok = 0 ]]; then
    ERRORS+=("$s run $r: no QUIC handshake with a request completed: $(grep -m1 'first' "$out")")
    return 1
  fi
  cpu=$(cpu_pct "$c0" "$c1" "$t0" "$t1")
  adds "$s" "$r" hs rate "$hps" p50 "$p50" p99 "$p99" cpu "$cpu" ccpu "$(cpu_pct "$k0" "$k1" "$t0" "$t1")" \
    cidle "$(idle_pct "$i0" "$i1" "$t0" "$t1")" eff "$(per_cpu_s "$hps" "$cpu")"
  count_errors "$s" hs $((ce + n2 + rs))
  ((ce + n2 + rs > 0)) && ERRORS+=("$s run $r handshakes: $ce connection errors, $n2 non-2xx, $rs reset streams: $(grep -m1 -E '^(h3load: first|errors)' "$out")")
  # Every connection carries one request: handshakes and answers must match, give or take
  # the connections still open when the clock ran out.
  ((hs - ok > HS_CONNS || ok > hs)) && ERRORS+=("$s run $r handshakes: $hs handshakes but $ok answered requests")
  log "$s: QUIC full handshakes $hps/s (handshake p50 $p50 ms, p99 $p99 ms), server CPU $cpu%, errors $((ce + n2 + rs))"
}

run_wrk() { # server run: HTTPS keep-alive (HTTP/1.1 over TLS over TCP)
  local s=$1 r=$2 out=$TMP/$1-wrk-$2.txt c0 c1 t0 t1 k0 k1 i0 i1 vals cpu
  timeout $((DURATION + 30)) taskset -c "$CLIENT_CPU" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d2s "$URL/" >/dev/null 2>&1 # warm-up
  wait_quiet
  mark
  c0=$(cpu_ticks) t0=$(now_ns) k0=$(client_ticks) i0=$(idle_ticks)
  timeout $((DURATION + 30)) taskset -c "$CLIENT_CPU" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DURATION}s" --latency "$URL/" >"$out" 2>&1
  c1=$(cpu_ticks) t1=$(now_ns) k1=$(client_ticks) i1=$(idle_ticks)
  foreign_since_mark "$s" "$r" ka "HTTPS keep-alive"
  vals=$(parse_wrk "$out") || {
    ERRORS+=("$s run $r: wrk failed: $(tail -2 "$out" | tr '\n' ' ')")
    return 1
  }
  local rps p50 p99 err
  read -r rps p50 p99 err _ <<<"$vals"
  cpu=$(cpu_pct "$c0" "$c1" "$t0" "$t1")
  adds "$s" "$r" ka rps "$rps" p50 "$p50" p99 "$p99" cpu "$cpu" ccpu "$(cpu_pct "$k0" "$k1" "$t0" "$t1")" \
    cidle "$(idle_pct "$i0" "$i1" "$t0" "$t1")" eff "$(per_cpu_s "$rps" "$cpu")"
  count_errors "$s" ka "$err"
  ((err > 0)) && ERRORS+=("$s run $r: wrk counted $err errors or non-2xx responses")
  log "$s: HTTPS keep-alive $rps req/s, p50 $p50 ms, p99 $p99 ms, server CPU $cpu%"
}

bench_server() { # server run: a fresh server for each measurement; a dead server ends it
  local s=$1 r=$2
  if start_server "$s"; then
    server_alive "run $r HTTP/3 keep-alive" && run_h3 "$s" "$r"
    server_alive "the end of run $r HTTP/3 keep-alive" && stop_server
  else
    ERRORS+=("$s run $r: did not start (HTTP/3 keep-alive)")
  fi
  if start_server "$s"; then
    server_alive "run $r QUIC handshakes" && run_hs "$s" "$r"
    server_alive "the end of run $r QUIC handshakes" && stop_server
  else
    ERRORS+=("$s run $r: did not start (QUIC handshakes)")
  fi
  [[ $(https_row "$s") = 1 ]] || return 0
  if start_server "$s"; then
    server_alive "run $r HTTPS keep-alive" && run_wrk "$s" "$r"
    server_alive "the end of run $r HTTPS keep-alive" && stop_server
  else
    ERRORS+=("$s run $r: did not start (HTTPS keep-alive)")
  fi
}

# ---- the table ----
print_table() {
  local both=0 s cols
  [[ " $SERVERS " = *" tollgate "* && " $SERVERS " = *" caddy "* ]] && both=1
  printf '\n### HTTP/3: tollgate vs Caddy, medians of %s runs\n\n' "$RUNS"
  cols="| metric |"
  for s in $SERVERS; do cols+=" $s |"; done
  echo "$cols tollgate/caddy | target |"
  cols="|---|"
  for s in $SERVERS; do cols+="---:|"; done
  echo "$cols---:|---|"
  row() { # key decimals label target-kind show-spread
    local key=$1 dec=$2 label=$3 kind=${4:-} line q verdict=''
    line="| $label |"
    server_cells "$key" "$dec" "${5:-}"
    q=-
    ((both)) && q=$(ratio "$(med tollgate "$key")" "$(med caddy "$key")")
    case $kind in
    h3) verdict="≥ 1.5× Caddy" ;;
    hs) verdict="≥ 1× Caddy" ;;
    esac
    if [[ -n $kind && $q != - ]]; then
      if ge "$q" "$([[ $kind = h3 ]] && echo 1.5 || echo 1)"; then verdict+=": met"; else verdict+=": MISSED"; fi
    fi
    echo "$line $q | $verdict |"
  }
  errrow() { # group label
    local line="| $2 |"
    for s in $SERVERS; do line+=" ${ERRCOUNT[$s:$1]:-0} |"; done
    echo "$line - | 0 |"
  }
  row h3_rps 0 "HTTP/3 requests/s, kept connections (h3load -c$H3_CONNS -m$H3_STREAMS, ${DURATION}s)" h3 spread
  row h3_p50 3 "… latency p50 (ms)"
  row h3_p99 3 "… latency p99 (ms)"
  errrow h3 "… errors, all runs (connection + non-2xx + reset)"
  row h3_cpu 0 "… server CPU (% of one core)"
  row h3_ccpu 0 "… client CPU, h3load + backend (% of one core)"
  row h3_cidle 0 "… client CPU idle (% of CPU $CLIENT_CPU's time)"
  row h3_eff 0 "… requests per server CPU-second" '' spread
  row hs_rate 0 "QUIC full handshakes/s, one request each (h3load --new-conn -c$HS_CONNS$( [[ $HS_VERIFY = 1 ]] || echo " --insecure"), ${HS_DURATION}s)" hs spread
  row hs_p50 3 "… handshake latency p50 (ms)"
  row hs_p99 3 "… handshake latency p99 (ms)"
  errrow hs "… errors, all runs (connection + non-2xx + reset)"
  row hs_cpu 0 "… server CPU (% of one core)"
  row hs_ccpu 0 "… client CPU, h3load + backend (% of one core)"
  row hs_cidle 0 "… client CPU idle (% of CPU $CLIENT_CPU's time)"
  row hs_eff 0 "… handshakes per server CPU-second" '' spread
  if [[ $HTTPS != off ]]; then
    row ka_rps 0 "HTTPS keep-alive requests/s (wrk -c$WRK_CONNS, HTTP/1.1, ${DURATION}s)" '' spread
    row ka_p50 3 "… latency p50 (ms)"
    row ka_p99 3 "… latency p99 (ms)"
    errrow ka "… errors, all runs (wrk: socket errors + non-2xx)"
    row ka_cpu 0 "… server CPU (% of one core)"
    row ka_ccpu 0 "… client CPU, wrk + backend (% of one core)"
    row ka_cidle 0 "… client CPU idle (% of CPU $CLIENT_CPU's time)"
    row ka_eff 0 "… requests per server CPU-second" '' spread
    local line="| HTTP/3 ÷ HTTPS requests/s |" k tg=''
    for s in $SERVERS; do
      k=$(ratio "$(med "$s" h3_rps)" "$(med "$s" ka_rps)")
      [[ $s = tollgate ]] && tg=$k
      line+=" $k |"
    done
    local verdict="tollgate ≥ 0.6"
    [[ -n $tg && $tg != - ]] && { if ge "$tg" 0.6; then verdict+=": met"; else verdict+=": MISSED"; fi; }
    echo "$line - | $verdict |"
    line="| … the same per server CPU-second |"
    for s in $SERVERS; do line+=" $(ratio "$(med "$s" h3_eff)" "$(med "$s" ka_eff)") |"; done
    echo "$line - | |"
  fi
  echo
  echo "±: half the range of the runs behind the median, in % of it. Medians leave out measurements"
  echo "during which other processes took more than 10% of a core, unless every run of that cell"
  echo "was disturbed$( ((STARRED)) && echo " (marked *)"). CPU shares are user + system time of the processes;"
  echo "the kernel's softirq work for the loopback traffic is no process's and shows only as less idle"
  echo "time. Server CPU below 100% with the client CPU idle near 0 means the client side was the limit:"
  echo "then compare the per server CPU-second rows."
  echo
  for s in $SERVERS; do
    printf -- '- %s: %s; forwarded headers seen by the backend: %s; other processes'"'"' CPU during its measurements: median %s%%, max %s%% of a core\n' \
      "$s" "${SESSION[$s]:-no handshake}" "${HEADS[$s]:-?}" "$(median <<<"${FOREIGN[$s]:-}")" "$(tr ' ' '\n' <<<"${FOREIGN[$s]:-}" | sort -n | tail -1)"
  done
  if ((both)) && [[ -n ${SESSION[tollgate]:-} && -n ${SESSION[caddy]:-} && ${SESSION[tollgate]} != "${SESSION[caddy]}" ]]; then
    ERRORS+=("negotiated sessions differ: tollgate: ${SESSION[tollgate]}; caddy: ${SESSION[caddy]}")
  fi
  print_problems "Problems during the runs" "${ERRORS[@]}"
}

# ---- main ----
log "servers: $SERVERS; runs: $RUNS; keep-alive ${DURATION}s (h3load -c$H3_CONNS -m$H3_STREAMS, wrk -c$WRK_CONNS), handshakes ${HS_DURATION}s (-c$HS_CONNS); server on CPU $SERVER_CPU, clients and backend on CPU $CLIENT_CPU; port $PORT (TCP+UDP), backend $BACKEND_PORT; temp $TMP"
warn_if_busy
make_pki
for s in $SERVERS; do write_configs "$s"; done
if [[ " $SERVERS " = *" tollgate "* ]]; then # fail at once, before spending minutes on Caddy
  chk=$("$BUILD/tollgate" check -c "$TMP/tollgate/tollgate.yaml" 2>&1) || die "tollgate check refused the configuration: $chk"
  if grep -qi 'quic' <<<"$chk" && grep -qiE 'not (yet )?served|not supported|unsupported' <<<"$chk"; then
    die "$BUILD/tollgate does not serve QUIC listeners: $(grep -i quic <<<"$chk" | head -1). (SERVERS=caddy $0 measures Caddy alone.)"
  fi
fi
start_backend

for s in $SERVERS; do # each must speak HTTP/3 and reach the backend, or there is nothing to compare
  start_server "$s" || die "$s did not start serving HTTP/3 on 127.0.0.1:$PORT (UDP)$([[ $s = tollgate ]] && echo ": does this build serve QUIC listeners? (SERVERS=caddy $0 measures Caddy alone.)")"
  if ! sanity_check "$s"; then
    stop_server
    die "$s does not serve HTTP/3 through to the backend: ${ERRORS[-1]}"
  fi
  stop_server
done

run_interleaved
print_table

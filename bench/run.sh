#!/usr/bin/env bash
# bench/run.sh: tollgate, nginx and HAProxy as equivalent TLS terminators in front of one small
# backend; prints one markdown table of medians and ratios to tollgate. See bench/README.md.
#
# Environment knobs (defaults in brackets):
#   SERVERS ["tollgate nginx haproxy"]  which servers to measure, in this order
#   RUNS [3]            runs of each measurement; the table shows medians
#   DURATION [10]       seconds of each wrk run        HS_DURATION [5]  seconds of each hsload run
#   IDLE_CONNS [10000]  idle connections for the memory measurement (0 skips it)
#   WRK_CONNS [64]      wrk connections               HS_CONNS [32]    hsload connections
#   WRK_THREADS [1]     wrk threads                   HS_THREADS [CPUs in CLIENT_CPU] hsload threads
#   HS_TLS []           "tls12" or "tls13" to force the handshake benches' protocol
#   ROWS [all]          "mtls": only the mutual-TLS rows (mTLS handshakes, and hsload's
#                       keep-alive requests/s with and without a client certificate)
#   KA_CONNS [WRK_CONNS] connections of hsload's keep-alive runs (hsload -k)
#   PORT, BACKEND_PORT [free ports picked at random in 20000-29999]
#   SERVER_CPU [0]  CLIENT_CPU [1] (a taskset list, e.g. 1-3)
#   BUILD_DIR [build]   where build/tollgate and build/bench/* are
#   KEEP_TMP [0]        1 keeps the temporary directory (configs, logs, raw tool output)
#   QUIET_WAIT [60]     before each measurement, wait up to this many seconds for other
#                       processes to leave the two CPUs (0: don't wait)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh" # BUILD_DIR, SERVER_CPU, CLIENT_CPU, WRK_*, KEEP_TMP, and what the benches share
SERVERS=${SERVERS:-tollgate nginx haproxy}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
HS_DURATION=${HS_DURATION:-5}
IDLE_CONNS=${IDLE_CONNS:-10000}
HS_CONNS=${HS_CONNS:-32}
HS_TLS=${HS_TLS:-}
ROWS=${ROWS:-all}
PORT=${PORT:-}
BACKEND_PORT=${BACKEND_PORT:-}
KA_CONNS=${KA_CONNS:-$WRK_CONNS}
QUIET_WAIT=${QUIET_WAIT:-60}

for s in $SERVERS; do
  case $s in tollgate | nginx | haproxy) ;; *) die "unknown server '$s' in SERVERS" ;; esac
done
for cmd in wrk taskset openssl awk; do command -v $cmd >/dev/null || die "$cmd is not installed"; done
[[ " $SERVERS " = *" nginx "* ]] && { command -v nginx >/dev/null || die "nginx is not installed (apt-get install nginx-light)"; }
[[ " $SERVERS " = *" haproxy "* ]] && { command -v haproxy >/dev/null || die "haproxy is not installed"; }
case $HS_TLS in "" | tls12 | tls13) ;; *) die "HS_TLS is tls12, tls13 or empty" ;; esac
case $ROWS in all | mtls) ;; *) die "ROWS is all or mtls" ;; esac
[[ $ROWS = mtls ]] && IDLE_CONNS=0 # no memory row then
check_nproc
CPUS=$(cpu_set "$SERVER_CPU" "$CLIENT_CPU")
HS_THREADS=${HS_THREADS:-$(cpu_list "$CLIENT_CPU" | wc -l)}

# ---- build what is missing (the bench tools alone when only the peers are measured) ----
build_missing "backend hsload idleconns" bench/benchtls.h
warn_build_type

# ---- open files: every idle connection is a descriptor in the server and in idleconns ----
# tollgate fits max_connections to the limit at two descriptors a connection (client and
# backend, as nginx counts worker_connections), so the server needs twice the idle count.
want=$((2 * IDLE_CONNS + 4096))
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < want)); then ulimit -Hn "$want" 2>/dev/null && hard=$want; fi
if [[ $hard = unlimited ]] || ((hard >= want)); then ulimit -Sn "$want"; else ulimit -Sn "$hard"; fi
NOFILE=$(ulimit -Sn)
if ((IDLE_CONNS + 4096 > NOFILE)); then
  IDLE_CONNS=$((NOFILE - 4096))
  ((IDLE_CONNS < 0)) && IDLE_CONNS=0
  log "warning: open files limited to $NOFILE: measuring idle memory with $IDLE_CONNS connections"
fi

make_tmp tollgate-bench
pick_ports

# ---- throwaway PKI: a P-256 and an RSA-2048 CA, each signing a leaf for localhost ----
make_pki() {
  local d=$TMP/pki kt alg
  pki_server_ext
  for kt in ecdsa rsa; do
    alg=("${P256[@]}")
    [[ $kt = rsa ]] && alg=(-newkey rsa:2048)
    pki_ca "ca-$kt" "/CN=tollgate bench $kt CA" "${alg[@]}" &&
      pki_leaf "$kt" "ca-$kt" /CN=localhost leaf.ext "${alg[@]}" || die "openssl failed to make the $kt PKI"
    cat "$d/$kt.crt" "$d/$kt.key" >"$d/$kt.pem" # HAProxy wants both in one file
  done
  # mutual TLS: a P-256 client CA and a P-256 client certificate signed by it
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$d/client.ext"
  pki_ca client-ca "/O=tollgate bench/CN=tollgate bench client CA" &&
    pki_leaf client client-ca "/C=DE/O=tollgate bench/CN=bench client" client.ext || die "openssl failed to make the client PKI"
}

# ---- configurations: the same certificate everywhere; nginx and HAProxy as bench/lib.sh sets
# them up (TLS 1.2 + 1.3, the suites of tls_cipher_policy_1_2_strict_with_1_3 in its order and
# the server's preference, X25519 first), one worker, no access log ----
write_configs() { # server kt: kt is ecdsa, rsa, or mtls (the ECDSA certificate, client certificates required)
  local s=$1 kt=$2 d=$TMP/$1-$2 pki=$TMP/pki ck=$2 mtls_certs='' mtls_listener='' mtls_hdrs='' mtls_bind=''
  [[ $kt = mtls ]] && ck=ecdsa
  mkdir -p "$d"
  case $s in
  tollgate)
    mkdir -p "$d/store"
    if [[ $kt = mtls ]]; then
      mtls_certs="  clients-ca:
    type: ca
    cert: $pki/client-ca.crt"
      mtls_listener="    mutual_auth:
      enabled: true
      ca_certificates: [clients-ca]
      verify_depth: 3"
    fi
    {
      tollgate_global "$d" 2s $((IDLE_CONNS + 1024))
      cat <<EOF
certificates:
  bench-$ck:
    type: server
    cert: $pki/$ck.crt
    key: $pki/$ck.key
$mtls_certs
EOF
      tollgate_bench_listener "bench-$ck"
      printf '%s\n' "$mtls_listener"
    } >"$d/tollgate.yaml"
    ;;
  nginx)
    if [[ $kt = mtls ]]; then # $ssl_client_fingerprint is SHA-1 (the others send SHA-256)
      mtls_certs="    ssl_client_certificate $pki/client-ca.crt;
    ssl_verify_client on;
    ssl_verify_depth 3;"
      mtls_hdrs="      proxy_set_header X-Forwarded-Clientcert-subjectdn \$ssl_client_s_dn;
      proxy_set_header X-Forwarded-Clientcert-issuerdn \$ssl_client_i_dn;
      proxy_set_header X-Forwarded-Clientcert-fingerprint \$ssl_client_fingerprint;
      proxy_set_header X-Forwarded-Clientcert-clientverify \$ssl_client_verify;"
    fi
    nginx_conf "$d" "$ck" $((IDLE_CONNS + 1024)) "worker_rlimit_nofile $NOFILE;" "$mtls_certs" "$mtls_hdrs" >"$d/nginx.conf"
    ;;
  haproxy)
    if [[ $kt = mtls ]]; then # no verify-depth setting: OpenSSL's default (100) applies
      mtls_bind="ca-file $pki/client-ca.crt verify required"
      mtls_hdrs="  http-request set-header X-Forwarded-Clientcert-subjectdn %[ssl_c_s_dn(,0,rfc2253)]
  http-request set-header X-Forwarded-Clientcert-issuerdn %[ssl_c_i_dn(,0,rfc2253)]
  http-request set-header X-Forwarded-Clientcert-fingerprint %[ssl_c_der,sha2(256),hex,lower]
  http-request set-header X-Forwarded-Clientcert-clientverify SUCCESS if { ssl_c_verify 0 }"
    fi
    haproxy_conf "$d" "$pki/$ck.pem" $((IDLE_CONNS + 1024)) \
      "  no strict-limits # it wants two descriptors per maxconn; idle client connections need one" \
      "$mtls_bind" "$mtls_hdrs" >"$d/haproxy.cfg"
    ;;
  esac
}

# ---- processes (stop_server, server_alive, the CPU counts: bench/lib.sh) ----
start_server() { # server kt: starts it pinned to SERVER_CPU, waits for its port
  local s=$1 kt=$2 d=$TMP/$1-$2 i
  port_open "$PORT" && { log "$s: port $PORT is still taken"; return 1; }
  case $s in
  tollgate) taskset -c "$SERVER_CPU" "$BUILD/tollgate" run -c "$d/tollgate.yaml" >>"$d/server.log" 2>&1 & ;;
  nginx) taskset -c "$SERVER_CPU" nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" >>"$d/server.log" 2>&1 & ;;
  haproxy) taskset -c "$SERVER_CPU" haproxy -f "$d/haproxy.cfg" -db >>"$d/server.log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  STARTED+=("$SERVER_PID")
  SERVER_NAME="$s ($kt)"
  SERVER_LOG=$d/server.log
  [[ $s = nginx ]] && SERVER_LOG=$d/error.log
  for ((i = 0; i < 100; i++)); do
    port_open "$PORT" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "$s ($kt) did not start; its output:"
  tail -n 20 "$d/server.log" "$d/error.log" 2>/dev/null >&2
  stop_server
  return 1
}

# ---- results: RES[server:metric:run]; NOISY[server:group:run] marks a disturbed measurement ----
declare -A RES NOISY FOREIGN SESSION HEADS CCERT
ERRORS=()

CLIENT_CERT=(-C "$TMP/pki/client.crt" -K "$TMP/pki/client.key") # hsload's options for mutual TLS
sanity_check() { # server kt: one request through the proxy; the backend logs its head
  local s=$1 kt=$2 body cert=() head
  command -v curl >/dev/null || return 0
  if [[ $kt = mtls ]]; then
    # Without a client certificate the request must fail (TLS 1.3: the alert comes after
    # curl's handshake, with or instead of the response).
    body=$(curl -sk --max-time 5 "https://127.0.0.1:$PORT/trace-head/$s-$kt-nocert")
    [[ $body = "hello world!" ]] && ERRORS+=("$s (mtls): a request WITHOUT a client certificate was answered: client verification is off")
    cert=(--cert "$TMP/pki/client.crt" --key "$TMP/pki/client.key")
  fi
  body=$(curl -sk "${cert[@]}" --max-time 5 "https://127.0.0.1:$PORT/trace-head/$s-$kt")
  if [[ $body != "hello world!" ]]; then
    ERRORS+=("$s ($kt): a request through it did not return the backend's body")
    return 1
  fi
  sleep 0.2
  head=$(awk -v p="/trace-head/$s-$kt " 'index($0, p) { on = 1 } on && /^\r?$/ { exit } on' "$TMP/backend.log" | tr -d '\r')
  if [[ $kt = mtls ]]; then
    CCERT[$s]=$(grep -i '^x-forwarded-clientcert-' <<<"$head" | sed 's/^[Xx]-[Ff]orwarded-[Cc]lientcert-//' | paste -sd ';' | sed 's/;/; /g')
  else
    HEADS[$s]=$(grep -io '^x-forwarded-[a-z-]*' <<<"$head" | tr 'A-Z' 'a-z' | sort | paste -sd ' ')
  fi
}

measure_idle() { # server run
  local s=$1 r=$2 out=$TMP/$1-idle-$2.txt before after pid open end_open i
  ((IDLE_CONNS > 0)) || return 0
  # Warm up: one connection and request, so lazily made structures are not counted per connection.
  "$BENCH/idleconns" -n 1 -H 0 "127.0.0.1:$PORT" >/dev/null 2>&1
  sleep 1
  wait_quiet
  before=$(rss_kib)
  mark
  taskset -c "$CLIENT_CPU" "$BENCH/idleconns" -n "$IDLE_CONNS" -H 240 "127.0.0.1:$PORT" >"$out" 2>&1 &
  pid=$!
  STARTED+=("$pid")
  for ((i = 0; i < 1800; i++)); do # up to 180 s to set them up
    grep -qs '^ready:' "$out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  sleep 2 # let the server settle (deferred frees, last responses)
  after=$(rss_kib)
  stop_pid "$pid"
  forget_pid "$pid"
  foreign_since_mark "$s" "$r" idle "idle memory"
  open=$(sed -n 's/^ready: open=\([0-9]*\).*/\1/p' "$out")
  end_open=$(sed -n 's/^end: open=\([0-9]*\).*/\1/p' "$out")
  if [[ -z $open || -z $end_open || $end_open -lt 1 ]]; then
    ERRORS+=("$s run $r: idle connections failed: $(tr '\n' ' ' <"$out")")
    return 1
  fi
  ((end_open < IDLE_CONNS)) && ERRORS+=("$s run $r: $end_open of $IDLE_CONNS idle connections were open at the measurement: $(head -1 "$out")")
  add "$s" "$r" idle_kib "$(awk -v a="$after" -v b="$before" -v n="$end_open" 'BEGIN { printf "%.2f", (a - b) / n }')"
  log "$s: idle: $end_open connections, RSS $before -> $after KiB"
}

run_wrk() { # server run
  local s=$1 r=$2 out=$TMP/$1-wrk-$2.txt c0 c1 t0 t1 vals
  timeout $((DURATION + 30)) taskset -c "$CLIENT_CPU" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d2s "https://127.0.0.1:$PORT/" >/dev/null 2>&1 # warm-up
  wait_quiet
  mark
  c0=$(cpu_ticks) t0=$(now_ns)
  timeout $((DURATION + 30)) taskset -c "$CLIENT_CPU" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DURATION}s" --latency "https://127.0.0.1:$PORT/" >"$out" 2>&1
  c1=$(cpu_ticks) t1=$(now_ns)
  foreign_since_mark "$s" "$r" ka keep-alive
  vals=$(parse_wrk "$out") || {
    ERRORS+=("$s run $r: wrk failed: $(tail -2 "$out" | tr '\n' ' ')")
    return 1
  }
  local rps p50 p99 err cpu
  read -r rps p50 p99 err _ <<<"$vals"
  cpu=$(cpu_pct "$c0" "$c1" "$t0" "$t1")
  adds "$s" "$r" ka rps "$rps" p50 "$p50" p99 "$p99" cpu "$cpu" eff "$(per_cpu_s "$rps" "$cpu")"
  ((err > 0)) && ERRORS+=("$s run $r: wrk counted $err errors or non-2xx responses")
  log "$s: keep-alive $rps req/s, p50 $p50 ms, p99 $p99 ms, server CPU $cpu%"
}

run_hsload() { # server kt run
  local s=$1 kt=$2 r=$3 out=$TMP/$1-hs-$2-$3.txt c0 c1 t0 t1 sig cpu line
  local cert=()
  sig=ECDSA+SHA256
  [[ $kt = rsa ]] && sig=rsa_pss_rsae_sha256:RSA+SHA256
  [[ $kt = mtls ]] && cert=("${CLIENT_CERT[@]}")
  wait_quiet
  mark
  c0=$(cpu_ticks) t0=$(now_ns)
  timeout $((HS_DURATION + 30)) taskset -c "$CLIENT_CPU" "$BENCH/hsload" -c "$HS_CONNS" -t "$HS_THREADS" -d "$HS_DURATION" \
    --sigalgs "$sig" ${HS_TLS:+--$HS_TLS} "${cert[@]}" "127.0.0.1:$PORT" >"$out" 2>&1
  c1=$(cpu_ticks) t1=$(now_ns)
  foreign_since_mark "$s" "$r" "hs_$kt" "$kt handshakes"
  line=$(grep '^result:' "$out") || {
    ERRORS+=("$s $kt run $r: hsload failed: $(tail -3 "$out" | tr '\n' ' ')")
    return 1
  }
  local hs err p50 p99
  hs=$(sed -n 's/.*hs_per_s=\([0-9.]*\).*/\1/p' <<<"$line")
  err=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")
  p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  if [[ ${hs%.*} = 0 ]]; then
    ERRORS+=("$s $kt run $r: no handshake completed: $(grep -m1 'first error' "$out")")
    return 1
  fi
  cpu=$(cpu_pct "$c0" "$c1" "$t0" "$t1")
  add "$s" "$r" "hs_$kt" "$hs"
  add "$s" "$r" "hs_${kt}_cpu" "$cpu"
  add "$s" "$r" "hs_${kt}_eff" "$(per_cpu_s "$hs" "$cpu")"
  SESSION[$s:$kt]=$(sed -n 's/^session: //p' "$out")
  ((err > 0)) && ERRORS+=("$s $kt run $r: hsload counted $err errors: $(grep -m1 'first error' "$out")")
  case $kt:${SESSION[$s:$kt]} in ecdsa:*"key EC"* | mtls:*"key EC"* | rsa:*"key RSA"*) ;; *) ERRORS+=("$s $kt run $r: unexpected session: ${SESSION[$s:$kt]}") ;; esac
  log "$s: $kt handshakes $hs/s (p50 $p50 ms, p99 $p99 ms), server CPU $cpu%, errors $err"
}

# Keep-alive requests with hsload -k, which (unlike wrk) can present a client certificate: the
# same tool with and without mTLS, so their ratio is the cost of mTLS and its four headers.
run_hka() { # server kt(ecdsa|mtls) run
  local s=$1 kt=$2 r=$3 out=$TMP/$1-hka-$2-$3.txt m=hka cert=() c0 c1 t0 t1 cpu vals
  [[ $kt = mtls ]] && { m=hkam; cert=("${CLIENT_CERT[@]}"); }
  local ka=("$BENCH/hsload" -k -c "$KA_CONNS" -t "$HS_THREADS" --sigalgs ECDSA+SHA256 "${cert[@]}")
  timeout 40 taskset -c "$CLIENT_CPU" "${ka[@]}" -d 2 "127.0.0.1:$PORT" >/dev/null 2>&1 # warm-up, as for wrk
  wait_quiet
  mark
  c0=$(cpu_ticks) t0=$(now_ns)
  # The first second (the KA_CONNS handshakes) is not counted: requests/s of established connections.
  timeout $((DURATION + 31)) taskset -c "$CLIENT_CPU" "${ka[@]}" -d $((DURATION + 1)) -w 1 "127.0.0.1:$PORT" >"$out" 2>&1
  c1=$(cpu_ticks) t1=$(now_ns)
  foreign_since_mark "$s" "$r" "$m" "keep-alive (hsload -k, $kt)"
  vals=$(awk '$1 == "result:" { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    if (v["req_per_s"] == "") exit 1; print v["req_per_s"], v["req_p50_ms"], v["req_p99_ms"], v["errors"]; ok = 1 }
    END { exit !ok }' "$out") || {
    ERRORS+=("$s $kt run $r: hsload -k failed: $(tail -3 "$out" | tr '\n' ' ')")
    return 1
  }
  local rps p50 p99 err
  read -r rps p50 p99 err <<<"$vals"
  if [[ ${rps%.*} = 0 ]]; then
    ERRORS+=("$s $kt run $r: no keep-alive request completed: $(grep -m1 'first error' "$out")")
    return 1
  fi
  cpu=$(cpu_pct "$c0" "$c1" "$t0" "$t1")
  adds "$s" "$r" "$m" rps "$rps" p50 "$p50" p99 "$p99" cpu "$cpu" eff "$(per_cpu_s "$rps" "$cpu")"
  ((err > 0)) && ERRORS+=("$s $kt run $r: hsload -k counted $err errors: $(grep -m1 'first error' "$out")")
  log "$s: keep-alive (hsload -k, $kt) $rps req/s, p50 $p50 ms, p99 $p99 ms, server CPU $cpu%, errors $err"
}

bench_server() { # server run: a fresh server for each group; a dead server ends its part
  local s=$1 r=$2
  if [[ $ROWS = all ]]; then
    if start_server "$s" ecdsa; then
      ((r == 1)) && sanity_check "$s" ecdsa
      server_alive "run $r idle memory" && measure_idle "$s" "$r"
      server_alive "run $r keep-alive" && run_wrk "$s" "$r"
      server_alive "run $r ECDSA handshakes" && run_hsload "$s" ecdsa "$r"
      server_alive "the end of run $r" && stop_server
    else
      ERRORS+=("$s (ecdsa) run $r: did not start")
    fi
    if start_server "$s" rsa; then
      ((r == 1)) && sanity_check "$s" rsa
      server_alive "run $r RSA handshakes" && run_hsload "$s" rsa "$r"
      server_alive "the end of run $r" && stop_server
    else
      ERRORS+=("$s (rsa) run $r: did not start")
    fi
  fi
  # The keep-alive pair, each on a fresh server: without mTLS (the ECDSA configuration)...
  if start_server "$s" ecdsa; then
    [[ $ROWS = mtls ]] && ((r == 1)) && sanity_check "$s" ecdsa
    server_alive "run $r keep-alive (hsload -k)" && run_hka "$s" ecdsa "$r"
    server_alive "the end of run $r" && stop_server
  else
    ERRORS+=("$s (ecdsa) run $r: did not start")
  fi
  # ... and with it, then mTLS handshakes on the same server.
  if start_server "$s" mtls; then
    ((r == 1)) && sanity_check "$s" mtls
    server_alive "run $r keep-alive (hsload -k, mTLS)" && run_hka "$s" mtls "$r"
    server_alive "run $r mTLS handshakes" && run_hsload "$s" mtls "$r"
    server_alive "the end of run $r" && stop_server
  else
    ERRORS+=("$s (mtls) run $r: did not start")
  fi
}

# ---- the table ----
metric_group() { # metric: its measurement (NOISY's group)
  case $1 in ka_*) echo ka ;; hka_*) echo hka ;; hkam_*) echo hkam ;; hs_ecdsa*) echo hs_ecdsa ;; hs_rsa*) echo hs_rsa ;;
  hs_mtls*) echo hs_mtls ;; *) echo idle ;; esac
}

print_table() {
  local has_tg=0 peers=() s cols
  [[ " $SERVERS " = *" tollgate "* ]] && has_tg=1
  for s in nginx haproxy; do [[ " $SERVERS " = *" $s "* ]] && peers+=("$s"); done
  printf '\n### tollgate vs nginx vs HAProxy: medians of %s runs\n\n' "$RUNS"
  cols="| metric |"
  for s in $SERVERS; do cols+=" $s |"; done
  for s in "${peers[@]}"; do cols+=" tollgate/$s |"; done
  echo "$cols target |"
  cols="|---|"
  for s in $SERVERS "${peers[@]}"; do cols+="---:|"; done
  echo "$cols---|"
  row() { # key decimals label target-kind show-spread
    local key=$1 dec=$2 label=$3 kind=${4:-} line v tg n h verdict=''
    line="| $label |"
    server_cells "$key" "$dec" "${5:-}"
    tg=$(med tollgate "$key")
    for s in "${peers[@]}"; do line+=" $( ((has_tg)) && ratio "$tg" "$(med "$s" "$key")" || printf -- '-') |"; done
    n=$( ((has_tg)) && ratio "$tg" "$(med nginx "$key")")
    h=$( ((has_tg)) && ratio "$tg" "$(med haproxy "$key")")
    case $kind in
    ka) verdict="≥ 1.2× nginx and ≥ 1× HAProxy"
      local judged=0 met=1
      [[ -n $n && $n != - ]] && { judged=1; ge "$n" 1.2 || met=0; }
      [[ -n $h && $h != - ]] && { judged=1; ge "$h" 1.0 || met=0; }
      ((judged)) && { if ((met)); then verdict+=": met"; else verdict+=": MISSED"; fi; } ;;
    hs) verdict="≥ 0.95× nginx"
      ((has_tg)) && [[ -n $n && $n != - ]] && { if ge "$n" 0.95; then verdict+=": met"; else verdict+=": MISSED"; fi; } ;;
    kam) verdict="≥ 0.95× tollgate without mTLS"
      local k
      k=$(ratio "$tg" "$(med tollgate hka_rps)")
      [[ -n $k && $k != - ]] && { if ge "$k" 0.95; then verdict+=" ($k): met"; else verdict+=" ($k): MISSED"; fi; } ;;
    mem) verdict="≤ 20 KiB"
      [[ -n $tg ]] && { if awk -v v="$tg" 'BEGIN { exit !(v <= 20) }'; then verdict+=": met"; else verdict+=": MISSED"; fi; } ;;
    esac
    echo "$line $verdict |"
  }
  if [[ $ROWS = all ]]; then
    row ka_rps 0 "keep-alive HTTPS requests/s (wrk -c$WRK_CONNS, 13-byte body)" ka spread
    row ka_p50 3 "keep-alive latency p50 (ms)"
    row ka_p99 3 "keep-alive latency p99 (ms)"
    row ka_cpu 0 "server CPU during keep-alive (% of one core)"
    row ka_eff 0 "keep-alive requests per server CPU-second" '' spread
    row hs_ecdsa 0 "full TLS handshakes/s, ECDSA P-256" hs spread
    row hs_ecdsa_cpu 0 "server CPU during ECDSA handshakes (%)"
    row hs_ecdsa_eff 0 "ECDSA handshakes per server CPU-second" '' spread
    row hs_rsa 0 "full TLS handshakes/s, RSA-2048" hs spread
    row hs_rsa_cpu 0 "server CPU during RSA handshakes (%)"
    row hs_rsa_eff 0 "RSA handshakes per server CPU-second" '' spread
    ((IDLE_CONNS > 0)) && row idle_kib 1 "KiB per idle keep-alive TLS connection ($IDLE_CONNS idle)" mem spread
  fi
  row hs_mtls 0 "full TLS handshakes/s, ECDSA, mTLS (ECDSA client cert)" hs spread
  row hs_mtls_cpu 0 "server CPU during mTLS handshakes (%)"
  row hs_mtls_eff 0 "mTLS handshakes per server CPU-second" '' spread
  row hka_rps 0 "keep-alive requests/s, hsload -k -c$KA_CONNS, no client cert" '' spread
  row hka_p50 3 "… latency p50 (ms)"
  row hka_p99 3 "… latency p99 (ms)"
  row hka_cpu 0 "… server CPU (% of one core)"
  row hka_eff 0 "… requests per server CPU-second" '' spread
  row hkam_rps 0 "keep-alive requests/s, hsload -k -c$KA_CONNS, mTLS + 4 client-cert headers" kam spread
  row hkam_p50 3 "… latency p50 (ms)"
  row hkam_p99 3 "… latency p99 (ms)"
  row hkam_cpu 0 "… server CPU (% of one core)"
  row hkam_eff 0 "… requests per server CPU-second" '' spread
  echo
  # The mTLS cost of each server on its own: keep-alive with mTLS over without, same tool.
  local line='' k e
  for s in $SERVERS; do
    k=$(ratio "$(med "$s" hkam_rps)" "$(med "$s" hka_rps)")
    e=$(ratio "$(med "$s" hkam_eff)" "$(med "$s" hka_eff)")
    line+="${line:+; }$s ${k:--} (per server CPU-second ${e:--})"
  done
  echo "keep-alive requests/s with mTLS ÷ without (hsload -k both; target for tollgate ≥ 0.95): $line"
  echo
  echo "±: half the range of the runs behind the median, in % of it. Medians leave out measurements"
  echo "during which other processes took more than 10% of a core, unless every run of that cell"
  echo "was disturbed$( ((STARRED)) && echo " (marked *)")."
  echo
  for s in $SERVERS; do
    printf -- '- %s: %s (%s run); forwarded headers seen by the backend: %s; other processes'"'"' CPU during its measurements: median %s%%, max %s%% of a core\n' \
      "$s" "${SESSION[$s:ecdsa]:-${SESSION[$s:mtls]:-no handshake}}" "$([[ -n ${SESSION[$s:ecdsa]:-} ]] && echo ECDSA || echo mTLS)" \
      "${HEADS[$s]:-?}" "$(median <<<"${FOREIGN[$s]:-}")" "$(tr ' ' '\n' <<<"${FOREIGN[$s]:-}" | sort -n | tail -1)"
    printf -- '  - with mTLS, X-Forwarded-Clientcert-* seen by the backend: %s\n' "${CCERT[$s]:-?}"
  done
  local first='' sess
  for s in $SERVERS; do # same protocol, suite and group everywhere, or the comparison is off
    sess=${SESSION[$s:ecdsa]:-${SESSION[$s:mtls]:-}}
    [[ -z $sess ]] && continue
    sess=${sess%%, server key*}
    if [[ -z $first ]]; then first=$sess; elif [[ $sess != "$first" ]]; then ERRORS+=("negotiated sessions differ: $first vs $s: $sess"); fi
  done
  print_problems "Problems during the runs" "${ERRORS[@]}"
}

# ---- main ----
log "servers: $SERVERS; rows: $ROWS; runs: $RUNS; wrk ${DURATION}s, hsload ${HS_DURATION}s, $IDLE_CONNS idle connections; server on CPU $SERVER_CPU, clients and backend on CPU $CLIENT_CPU; ports $PORT (server), $BACKEND_PORT (backend); temp $TMP"
warn_if_busy
make_pki
for s in $SERVERS; do for kt in ecdsa rsa mtls; do write_configs "$s" "$kt"; done; done
start_backend

run_interleaved
print_table

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
BUILD=${BUILD_DIR:-$ROOT/build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
SERVERS=${SERVERS:-tollgate nginx haproxy}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
HS_DURATION=${HS_DURATION:-5}
IDLE_CONNS=${IDLE_CONNS:-10000}
WRK_CONNS=${WRK_CONNS:-64}
HS_CONNS=${HS_CONNS:-32}
HS_TLS=${HS_TLS:-}
ROWS=${ROWS:-all}
PORT=${PORT:-}
BACKEND_PORT=${BACKEND_PORT:-}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
WRK_THREADS=${WRK_THREADS:-1}
KA_CONNS=${KA_CONNS:-$WRK_CONNS}
KEEP_TMP=${KEEP_TMP:-0}
QUIET_WAIT=${QUIET_WAIT:-60}
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for s in $SERVERS; do
  case $s in tollgate | nginx | haproxy) ;; *) die "unknown server '$s' in SERVERS" ;; esac
done
for cmd in wrk taskset openssl awk; do command -v $cmd >/dev/null || die "$cmd is not installed"; done
[[ " $SERVERS " = *" nginx "* ]] && { command -v nginx >/dev/null || die "nginx is not installed (apt-get install nginx-light)"; }
[[ " $SERVERS " = *" haproxy "* ]] && { command -v haproxy >/dev/null || die "haproxy is not installed"; }
case $HS_TLS in "" | tls12 | tls13) ;; *) die "HS_TLS is tls12, tls13 or empty" ;; esac
case $ROWS in all | mtls) ;; *) die "ROWS is all or mtls" ;; esac
[[ $ROWS = mtls ]] && IDLE_CONNS=0 # no memory row then
if (($(nproc) < 2)); then
  log "warning: fewer than 2 CPUs: server and load generator share CPU $SERVER_CPU"
  CLIENT_CPU=$SERVER_CPU
fi
cpu_list() { tr ',' '\n' <<<"$1" | awk -F- 'NF == 2 { for (i = $1; i <= $2; i++) print i; next } { print $1 }'; }
CPUS=$( (cpu_list "$SERVER_CPU"; cpu_list "$CLIENT_CPU") | sort -un | paste -sd ' ')
HS_THREADS=${HS_THREADS:-$(cpu_list "$CLIENT_CPU" | wc -l)}

# ---- build what is missing (the bench tools alone when only the peers are measured) ----
targets=()
for t in backend hsload idleconns; do # missing, or older than its source
  if [[ ! -x $BUILD/bench/$t || $ROOT/bench/$t.c -nt $BUILD/bench/$t || $ROOT/bench/benchtls.h -nt $BUILD/bench/$t ]]; then
    targets+=("$t")
  fi
done
[[ " $SERVERS " = *" tollgate "* && ! -x $BUILD/tollgate ]] && targets+=(tollgate)
if ((${#targets[@]})); then
  log "building ${targets[*]} in $BUILD"
  if [[ ! -f $BUILD/CMakeCache.txt ]]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >&2 || die "cmake configure failed"
  fi
  cmake --build "$BUILD" -j2 --target "${targets[@]}" >&2 || die "build failed"
fi
BENCH=$BUILD/bench
if [[ " $SERVERS " = *" tollgate "* ]]; then
  bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
  grep -q '^TG_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null && log "warning: $BUILD is a sanitizer build: tollgate's numbers are not comparable"
  [[ $bt = Debug ]] && log "warning: $BUILD is a Debug build: build Release for comparable numbers"
fi

# ---- open files: every idle connection is a descriptor in the server and in idleconns ----
want=$((IDLE_CONNS + 4096))
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < want)); then ulimit -Hn "$want" 2>/dev/null && hard=$want; fi
if [[ $hard = unlimited ]] || ((hard >= want)); then ulimit -Sn "$want"; else ulimit -Sn "$hard"; fi
NOFILE=$(ulimit -Sn)
if ((IDLE_CONNS + 4096 > NOFILE)); then
  IDLE_CONNS=$((NOFILE - 4096))
  ((IDLE_CONNS < 0)) && IDLE_CONNS=0
  log "warning: open files limited to $NOFILE: measuring idle memory with $IDLE_CONNS connections"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX") || die "mktemp failed"
chmod 755 "$TMP"
STARTED=()

stop_pid() { # pid: TERM, up to 10 s to exit, then KILL; returns its exit status
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
forget_pid() { local p keep=(); for p in "${STARTED[@]}"; do [[ $p = "$1" ]] || keep+=("$p"); done; STARTED=("${keep[@]}"); }
cleanup() {
  local p
  for p in "${STARTED[@]}"; do stop_pid "$p"; done
  if [[ $KEEP_TMP = 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
listeners() { # port: pids listening on it (when ss can tell)
  command -v ss >/dev/null && ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}
free_port() { # other benches may run on this machine: a random port nobody listens on
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 10000))
    [[ $p != "${PORT:-}" ]] && ! port_open "$p" && [[ -z $(listeners "$p") ]] && { echo "$p"; return 0; }
  done
  return 1
}
[[ -n $PORT ]] || PORT=$(free_port) || die "no free port found"
[[ -n $BACKEND_PORT ]] || BACKEND_PORT=$(free_port) || die "no free port found"
for p in "$PORT" "$BACKEND_PORT"; do port_open "$p" && die "127.0.0.1:$p is already in use"; done

# ---- throwaway PKI: a P-256 and an RSA-2048 CA, each signing a leaf for localhost ----
make_pki() {
  local d=$TMP/pki kt
  mkdir -p "$d"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$d/leaf.ext"
  for kt in ecdsa rsa; do
    local alg=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
    [[ $kt = rsa ]] && alg=(-newkey rsa:2048)
    openssl req -x509 "${alg[@]}" -nodes -days 7 -subj "/CN=tollgate bench $kt CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      -keyout "$d/ca-$kt.key" -out "$d/ca-$kt.crt" 2>/dev/null &&
      openssl req "${alg[@]}" -nodes -subj /CN=localhost -keyout "$d/$kt.key" -out "$d/$kt.csr" 2>/dev/null &&
      openssl x509 -req -in "$d/$kt.csr" -CA "$d/ca-$kt.crt" -CAkey "$d/ca-$kt.key" -CAcreateserial \
        -days 7 -extfile "$d/leaf.ext" -out "$d/$kt.crt" 2>/dev/null || die "openssl failed to make the $kt PKI"
    cat "$d/$kt.crt" "$d/$kt.key" >"$d/$kt.pem" # HAProxy wants both in one file
  done
  # mutual TLS: a P-256 client CA and a P-256 client certificate signed by it
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$d/client.ext"
  openssl req -x509 "${ec[@]}" -nodes -days 7 -subj "/O=tollgate bench/CN=tollgate bench client CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$d/client-ca.key" -out "$d/client-ca.crt" 2>/dev/null &&
    openssl req "${ec[@]}" -nodes -subj "/C=DE/O=tollgate bench/CN=bench client" \
      -keyout "$d/client.key" -out "$d/client.csr" 2>/dev/null &&
    openssl x509 -req -in "$d/client.csr" -CA "$d/client-ca.crt" -CAkey "$d/client-ca.key" -CAcreateserial \
      -days 7 -extfile "$d/client.ext" -out "$d/client.crt" 2>/dev/null || die "openssl failed to make the client PKI"
}

# ---- configurations: same certificate, TLS 1.2 + 1.3 with the suites of
# tls_cipher_policy_1_2_strict_with_1_3 in its order and the server's preference (so every
# server picks TLS_AES_128_GCM_SHA256), X25519 first, one worker, no access log ----
CIPHERS12=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA
CIPHERS13=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256
CURVES=X25519:P-256:P-384

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
    cat >"$d/tollgate.yaml" <<EOF
version: 1
global:
  workers: 1
  pid_file: $d/tollgate.pid
  certificate_dir: $d/store
  log_level: warn
  access_log: off
  drain_timeout: 2s
  limits:
    max_connections: $((IDLE_CONNS + 1024))
    idle_timeout: 300s
certificates:
  bench-$ck:
    type: server
    cert: $pki/$ck.crt
    key: $pki/$ck.key
$mtls_certs
backends:
  app:
    servers: [127.0.0.1:$BACKEND_PORT]
listeners:
  bench:
    protocol: https
    listen: "127.0.0.1:$PORT"
    backend: app
    security_policy: tls_cipher_policy_1_2_strict_with_1_3
    certificates:
      default: bench-$ck
$mtls_listener
EOF
    ;;
  nginx)
    local user='' temps='' m
    ((EUID == 0)) && user='user root root;' # workers keep the caller's rights, like the others
    for m in client_body proxy fastcgi uwsgi scgi; do # Debian's defaults are not writable by non-root
      grep -qa "${m}_temp_path" "$(command -v nginx)" && temps+="  ${m}_temp_path $d/tmp-$m;"$'\n'
    done
    if [[ $kt = mtls ]]; then # $ssl_client_fingerprint is SHA-1 (the others send SHA-256)
      mtls_certs="    ssl_client_certificate $pki/client-ca.crt;
    ssl_verify_client on;
    ssl_verify_depth 3;"
      mtls_hdrs="      proxy_set_header X-Forwarded-Clientcert-subjectdn \$ssl_client_s_dn;
      proxy_set_header X-Forwarded-Clientcert-issuerdn \$ssl_client_i_dn;
      proxy_set_header X-Forwarded-Clientcert-fingerprint \$ssl_client_fingerprint;
      proxy_set_header X-Forwarded-Clientcert-clientverify \$ssl_client_verify;"
    fi
    cat >"$d/nginx.conf" <<EOF
$user
worker_processes 1;
worker_rlimit_nofile $NOFILE;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events {
  worker_connections $((IDLE_CONNS + 1024));
}
http {
  access_log off;
$temps  keepalive_timeout 300s;
  keepalive_requests 100000000;
  upstream app {
    server 127.0.0.1:$BACKEND_PORT;
    keepalive 64;
    keepalive_requests 100000000;
  }
  server {
    listen 127.0.0.1:$PORT ssl;
    ssl_certificate $pki/$ck.crt;
    ssl_certificate_key $pki/$ck.key;
$mtls_certs
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers $CIPHERS12;
    ssl_conf_command Ciphersuites $CIPHERS13;
    ssl_ecdh_curve $CURVES;
    ssl_prefer_server_ciphers on;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Port \$server_port;
      proxy_set_header X-Forwarded-Client-Srcport \$remote_port;
$mtls_hdrs
    }
  }
}
EOF
    ;;
  haproxy)
    if [[ $kt = mtls ]]; then # no verify-depth setting: OpenSSL's default (100) applies
      mtls_bind=" ca-file $pki/client-ca.crt verify required"
      mtls_hdrs="  http-request set-header X-Forwarded-Clientcert-subjectdn %[ssl_c_s_dn(,0,rfc2253)]
  http-request set-header X-Forwarded-Clientcert-issuerdn %[ssl_c_i_dn(,0,rfc2253)]
  http-request set-header X-Forwarded-Clientcert-fingerprint %[ssl_c_der,sha2(256),hex,lower]
  http-request set-header X-Forwarded-Clientcert-clientverify SUCCESS if { ssl_c_verify 0 }"
    fi
    cat >"$d/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn $((IDLE_CONNS + 1024))
  no strict-limits # it wants two descriptors per maxconn; idle client connections need one
  pidfile $d/haproxy.pid
  ssl-default-bind-ciphers $CIPHERS12
  ssl-default-bind-ciphersuites $CIPHERS13
  ssl-default-bind-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3

defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-request 10s
  timeout http-keep-alive 300s

frontend bench
  bind 127.0.0.1:$PORT ssl crt $pki/$ck.pem curves $CURVES$mtls_bind
  option forwardfor
  http-request set-header X-Forwarded-Proto https
  http-request set-header X-Forwarded-Port %[dst_port]
  http-request set-header X-Forwarded-Client-Srcport %[src_port]
$mtls_hdrs
  default_backend app

backend app
  http-reuse always
  server app1 127.0.0.1:$BACKEND_PORT
EOF
    ;;
  esac
}

# ---- processes ----
SERVER_PID=
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
SERVER_NAME= SERVER_LOG=
stop_server() { # a status other than 0 or 143 (SIGTERM) is a problem to report
  local st
  [[ -n $SERVER_PID ]] || return 0
  stop_pid "$SERVER_PID"
  st=$?
  forget_pid "$SERVER_PID"
  SERVER_PID=
  if ((st != 0 && st != 143)); then
    ERRORS+=("$SERVER_NAME exited with status $st when stopped; its log ends: $(tail -n 3 "$SERVER_LOG" 2>/dev/null | tr '\n' ' ')")
  fi
  return 0
}
server_alive() { # what: true while the server runs alone on its port; else reports why not
  [[ -n $SERVER_PID ]] || return 1
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    # Another process with SO_REUSEPORT on the same port would take part of the connections.
    local p ours others=''
    ours=" $(proc_tree "$SERVER_PID" | paste -sd ' ') "
    for p in $(listeners "$PORT"); do [[ $ours = *" $p "* ]] || others+=" $p"; done
    [[ -z $others ]] && return 0
    ERRORS+=("$SERVER_NAME: other processes also listen on port $PORT (pids$others): skipped $1")
    return 1
  fi
  local st
  wait "$SERVER_PID" 2>/dev/null
  st=$?
  local keep
  keep=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench-died.XXXXXX") && cp -r "$(dirname "$SERVER_LOG")/." "$keep/"
  ERRORS+=("$SERVER_NAME died (status $st) before $1; its log ends: $(tail -n 3 "$SERVER_LOG" 2>/dev/null | tr '\n' ' ') (configuration and logs kept in $keep)")
  forget_pid "$SERVER_PID"
  SERVER_PID=
  return 1
}

proc_tree() { # pid: it and its descendants (nginx: master and worker)
  local todo=("$1") p kids
  while ((${#todo[@]})); do
    p=${todo[0]}
    todo=("${todo[@]:1}")
    [[ -d /proc/$p ]] || continue
    echo "$p"
    kids=$(cat /proc/"$p"/task/*/children 2>/dev/null || ps -o pid= --ppid "$p")
    for k in $kids; do todo+=("$k"); done
  done
}
rss_kib() { # VmRSS summed over the server's processes
  local p sum=0 v
  for p in $(proc_tree "$SERVER_PID"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
cpu_ticks() { # user + system clock ticks summed over the server's processes
  local p sum=0 st f
  for p in $(proc_tree "$SERVER_PID"); do
    st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -ra f <<<"${st##*) }" # fields after the command name; utime and stime are 12th and 13th
    sum=$((sum + f[11] + f[12]))
  done
  echo "$sum"
}
now_ns() { date +%s%N; }
cpu_pct() { # ticks0 ticks1 ns0 ns1
  awk -v a="$1" -v b="$2" -v t0="$3" -v t1="$4" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", (b - a) / hz / ((t1 - t0) / 1e9) * 100 }'
}

# Other sessions' processes on these CPUs make the numbers noisy: count the CPU time spent on
# them by anything but the server, the backend, and this script with its children (wrk, hsload...).
BACKEND_PID=
cpus_busy() {
  awk -v cpus="$CPUS" 'BEGIN { n = split(cpus, c, " "); for (i = 1; i <= n; i++) want["cpu" c[i]] = 1 }
    $1 in want { s += $2 + $3 + $4 + $7 + $8 + $9 } END { print s }' /proc/stat
}
own_ticks() {
  local f b sum
  read -ra f <<<"$(sed 's/.*) //' /proc/$$/stat)"
  sum=$((f[11] + f[12] + f[13] + f[14])) # utime, stime, and those of the children waited for
  if [[ -n $BACKEND_PID ]]; then
    read -ra b <<<"$(sed 's/.*) //' "/proc/$BACKEND_PID/stat" 2>/dev/null)"
    sum=$((sum + ${b[11]:-0} + ${b[12]:-0}))
  fi
  echo $((sum + $(cpu_ticks)))
}
MARK=()
mark() { MARK=("$(cpus_busy)" "$(own_ticks)" "$(now_ns)"); }
foreign_pct() { # other processes' CPU since mark, as % of one core
  local b o t
  b=$(cpus_busy) o=$(own_ticks) t=$(now_ns)
  awk -v db=$((b - MARK[0])) -v dn=$((o - MARK[1])) -v dt=$((t - MARK[2])) -v hz="$CLK_TCK" \
    'BEGIN { v = (db - dn) / hz / (dt / 1e9) * 100; printf "%.0f", v < 0 ? 0 : v }'
}
foreign_since_mark() { # server run group what: past 10% of a core the measurement is noisy
  local pct
  pct=$(foreign_pct)
  FOREIGN[$1]="${FOREIGN[$1]:-} $pct"
  if ((pct > 10)); then
    NOISY[$1:$3:$2]=1
    ERRORS+=("$1 run $2 $4: other processes took ${pct}% of a core on CPUs $CPUS meanwhile (noisy)")
  fi
  return 0
}
wait_quiet() { # waits up to QUIET_WAIT s for the CPUs to be free of other processes
  local deadline=$((SECONDS + QUIET_WAIT)) pct t0=$SECONDS
  ((QUIET_WAIT > 0)) || return 0
  while :; do
    mark
    sleep 0.5
    pct=$(foreign_pct)
    ((pct <= 10)) && break
    if ((SECONDS >= deadline)); then
      log "other processes still take ${pct}% of a core after ${QUIET_WAIT}s: measuring anyway"
      return 0
    fi
  done
  ((SECONDS > t0 + 1)) && log "waited $((SECONDS - t0))s for other processes to leave the CPUs"
  return 0
}

# ---- results: RES[server:metric:run]; NOISY[server:group:run] marks a disturbed measurement ----
declare -A RES NOISY FOREIGN SESSION HEADS CCERT
add() { RES[$1:$3:$2]=$4; } # server run metric value
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
  vals=$(awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } $1 == "Requests/sec:" { rps = $2 }
    /Non-2xx or 3xx responses:/ { err += $NF }
    /Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
    END { if (rps == "") exit 1; printf "%s %.3f %.3f %d", rps, p50, p99, err }' "$out") || {
    ERRORS+=("$s run $r: wrk failed: $(tail -2 "$out" | tr '\n' ' ')")
    return 1
  }
  read -r rps p50 p99 err <<<"$vals"
  local cpu
  cpu=$(cpu_pct "$c0" "$c1" "$t0" "$t1")
  add "$s" "$r" ka_rps "$rps"
  add "$s" "$r" ka_p50 "$p50"
  add "$s" "$r" ka_p99 "$p99"
  add "$s" "$r" ka_cpu "$cpu"
  add "$s" "$r" ka_eff "$(awk -v a="$rps" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", a * 100 / c }')"
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
  add "$s" "$r" "hs_${kt}_eff" "$(awk -v a="$hs" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", a * 100 / c }')"
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
  add "$s" "$r" "${m}_rps" "$rps"
  add "$s" "$r" "${m}_p50" "$p50"
  add "$s" "$r" "${m}_p99" "$p99"
  add "$s" "$r" "${m}_cpu" "$cpu"
  add "$s" "$r" "${m}_eff" "$(awk -v a="$rps" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", a * 100 / c }')"
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
median() { tr ' ' '\n' | awk 'NF { a[n++] = $1 } END { if (!n) exit; asort_n(a, n); if (n % 2) print a[(n - 1) / 2]; else print (a[n / 2 - 1] + a[n / 2]) / 2 }
  function asort_n(a, n,   i, j, t) { for (i = 1; i < n; i++) for (j = i; j > 0 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } }'; }
values() { # server metric clean-only: the runs' values, without noisy ones if clean-only is 1
  local g r out=()
  case $2 in ka_*) g=ka ;; hka_*) g=hka ;; hkam_*) g=hkam ;; hs_ecdsa*) g=hs_ecdsa ;; hs_rsa*) g=hs_rsa ;;
  hs_mtls*) g=hs_mtls ;; *) g=idle ;; esac
  for ((r = 1; r <= RUNS; r++)); do
    [[ -n ${RES[$1:$2:$r]:-} ]] || continue
    (($3)) && [[ -n ${NOISY[$1:$g:$r]:-} ]] && continue
    out+=("${RES[$1:$2:$r]}")
  done
  echo "${out[*]}"
}
# The median of the clean runs; of all runs when none was clean.
used() { local v; v=$(values "$1" "$2" 1); [[ -n $v ]] || v=$(values "$1" "$2" 0); echo "$v"; }
med() { used "$1" "$2" | median; }
spread() { # server metric: half the range of the runs used, in % of their median
  used "$1" "$2" | tr ' ' '\n' | awk -v m="$(med "$1" "$2")" 'NF { if (n++ == 0 || $1 < lo) lo = $1; if ($1 > hi) hi = $1 }
    END { if (n > 1 && m > 0) printf " ±%.0f%%", (hi - lo) / 2 / m * 100 }'
}
all_noisy() { [[ -n $(values "$1" "$2" 0) && -z $(values "$1" "$2" 1) ]]; }
fmt() { [[ -n $2 ]] && awk -v v="$2" -v d="$1" 'BEGIN { printf "%.*f", d, v }' || printf -- '-'; }
ratio() { [[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }' || printf -- '-'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 >= b + 0) }'; }

STARRED=0
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
    for s in $SERVERS; do
      line+=" $(fmt "$dec" "$(med "$s" "$key")")"
      all_noisy "$s" "$key" && { line+='*'; STARRED=1; }
      [[ ${5:-} = spread ]] && line+=$(spread "$s" "$key")
      line+=" |"
    done
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
  if ((${#ERRORS[@]})); then
    printf '\nProblems during the runs:\n'
    printf -- '- %s\n' "${ERRORS[@]}"
  fi
}

# ---- main ----
log "servers: $SERVERS; rows: $ROWS; runs: $RUNS; wrk ${DURATION}s, hsload ${HS_DURATION}s, $IDLE_CONNS idle connections; server on CPU $SERVER_CPU, clients and backend on CPU $CLIENT_CPU; ports $PORT (server), $BACKEND_PORT (backend); temp $TMP"
b0=$(cpus_busy)
sleep 1
busy=$((($(cpus_busy) - b0) * 100 / CLK_TCK))
((busy > 10)) && log "warning: other processes use ${busy}% of a core on CPUs $CPUS: expect noisy numbers"
make_pki
for s in $SERVERS; do for kt in ecdsa rsa mtls; do write_configs "$s" "$kt"; done; done
taskset -c "$CLIENT_CPU" "$BENCH/backend" "$BACKEND_PORT" >"$TMP/backend.log" 2>&1 &
BACKEND_PID=$!
STARTED+=("$BACKEND_PID")
for ((i = 0; i < 50; i++)); do port_open "$BACKEND_PORT" && break; sleep 0.1; done
port_open "$BACKEND_PORT" || die "the backend did not start: $(cat "$TMP/backend.log")"

for ((r = 1; r <= RUNS; r++)); do # interleaved, so drift on the machine hits every server alike
  for s in $SERVERS; do
    log "run $r/$RUNS: $s"
    bench_server "$s" "$r"
  done
done
print_table

# bench/lib.sh: what bench/run.sh, bench/reload.sh and bench/h3.sh share; each sources it right
# after `set -uo pipefail` and setting ROOT (the repository). It holds the knobs all three have
# (BUILD_DIR, SERVER_CPU, CLIENT_CPU, WRK_CONNS, WRK_THREADS, KEEP_TMP; documented in each
# script's header), logging, building the bench tools, the temporary directory and the
# processes started (stopped at exit), ports, pieces of the throwaway PKI, the nginx, HAProxy
# and tollgate configuration text the scripts have in common, the server's CPU and memory,
# other processes' CPU on the bench CPUs (to flag noisy measurements), and medians, spreads
# and ratios for the tables. Sourcing it runs nothing but setting those defaults.

BUILD=${BUILD_DIR:-$ROOT/build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
BENCH=$BUILD/bench
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
WRK_CONNS=${WRK_CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
KEEP_TMP=${KEEP_TMP:-0}
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- CPUs ----
check_nproc() { # with one CPU, server and load generator share SERVER_CPU
  if (($(nproc) < 2)); then
    log "warning: fewer than 2 CPUs: server and load generator share CPU $SERVER_CPU"
    CLIENT_CPU=$SERVER_CPU
  fi
}
cpu_list() { tr ',' '\n' <<<"$1" | awk -F- 'NF == 2 { for (i = $1; i <= $2; i++) print i; next } { print $1 }'; }
cpu_set() { local l; for l; do cpu_list "$l"; done | sort -un | paste -sd ' '; } # taskset-list...: the CPUs, once each

# ---- building ----
build_missing() { # "tool..." [source...]: builds the bench tools that are missing or older than
  # bench/TOOL.c or a SOURCE (a path in ROOT), and tollgate when SERVERS has it and it is missing
  local tools=$1 t src targets=()
  shift
  for t in $tools; do
    if [[ ! -x $BUILD/bench/$t || $ROOT/bench/$t.c -nt $BUILD/bench/$t ]]; then targets+=("$t"); continue; fi
    for src; do [[ $ROOT/$src -nt $BUILD/bench/$t ]] && { targets+=("$t"); break; }; done
  done
  [[ " $SERVERS " = *" tollgate "* && ! -x $BUILD/tollgate ]] && targets+=(tollgate)
  if ((${#targets[@]})); then
    log "building ${targets[*]} in $BUILD"
    if [[ ! -f $BUILD/CMakeCache.txt ]]; then
      cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >&2 || die "cmake configure failed"
    fi
    cmake --build "$BUILD" -j2 --target "${targets[@]}" >&2 || die "build failed"
  fi
  return 0
}
warn_build_type() { # tollgate's numbers compare from a Release build without sanitizers only
  [[ " $SERVERS " = *" tollgate "* ]] || return 0
  local bt
  bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
  grep -q '^TG_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null && log "warning: $BUILD is a sanitizer build: tollgate's numbers are not comparable"
  [[ $bt = Debug ]] && log "warning: $BUILD is a Debug build: build Release for comparable numbers"
  return 0
}

# ---- the temporary directory and the processes started ----
STARTED=() # every pid the script started and has not stopped; stopped at exit
make_tmp() { # name: TMP, a new ${TMPDIR:-/tmp}/NAME.XXXXXX, removed at exit unless KEEP_TMP=1
  TMP_NAME=$1
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || die "mktemp failed"
  chmod 755 "$TMP"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}
alive() { kill -0 "$1" 2>/dev/null; }
stop_pid() { # pid: TERM, up to 10 s to exit, then KILL; returns its exit status
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
forget_pid() { local p keep=(); for p in "${STARTED[@]}"; do [[ $p = "$1" ]] || keep+=("$p"); done; STARTED=("${keep[@]}"); }
cleanup() { # at exit: the script's at_exit first, when it has defined one by then
  local p
  declare -F at_exit >/dev/null && at_exit
  for p in "${STARTED[@]}"; do stop_pid "$p"; done
  if [[ $KEEP_TMP = 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}

# ---- ports (127.0.0.1) ----
UDP_TOO=0 # 1: the server also uses PORT over UDP (QUIC): free ports and listeners count UDP too
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
udp_bound() { # port: some UDP socket is bound to it (any address)
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" 'FNR > 1 && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' /proc/net/udp /proc/net/udp6 2>/dev/null
}
listeners() { # port: pids listening on it (when ss can tell)
  command -v ss >/dev/null || return 0
  { ss -Hltnp "sport = :$1"; ((UDP_TOO)) && ss -Hlunp "sport = :$1"; } 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}
free_port() { # other benches may run on this machine: a random port nobody uses
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 10000))
    [[ $p != "${PORT:-}" ]] && ! port_open "$p" && ! { ((UDP_TOO)) && udp_bound "$p"; } && [[ -z $(listeners "$p") ]] && { echo "$p"; return 0; }
  done
  return 1
}
pick_ports() { # PORT and BACKEND_PORT: free ones picked unless set; dies if one is taken
  local p
  [[ -n $PORT ]] || PORT=$(free_port) || die "no free port found"
  [[ -n $BACKEND_PORT ]] || BACKEND_PORT=$(free_port) || die "no free port found"
  for p in "$PORT" "$BACKEND_PORT"; do port_open "$p" && die "127.0.0.1:$p$( ((UDP_TOO)) && echo ' (TCP)') is already in use"; done
  ((UDP_TOO)) && udp_bound "$PORT" && die "UDP port $PORT is already in use"
  return 0
}

# ---- throwaway PKI pieces, in $TMP/pki ----
P256=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
pki_server_ext() { # [key usage]: leaf.ext, the extensions of a server certificate for localhost and 127.0.0.1
  mkdir -p "$TMP/pki"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,%s\nextendedKeyUsage=serverAuth\n' \
    "${1:-digitalSignature,keyEncipherment}" >"$TMP/pki/leaf.ext"
}
pki_ca() { # name subject [key options (P-256)]: NAME.key and NAME.crt, a self-signed CA for 7 days
  local d=$TMP/pki n=$1 subj=$2
  shift 2
  (($#)) || set -- "${P256[@]}"
  mkdir -p "$d"
  openssl req -x509 "$@" -nodes -days 7 -subj "$subj" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$d/$n.key" -out "$d/$n.crt" 2>/dev/null
}
pki_leaf() { # name ca subject ext-file [key options (P-256)]: NAME.key and NAME.crt, signed by CA for 7 days
  local d=$TMP/pki n=$1 ca=$2 subj=$3 ext=$4
  shift 4
  (($#)) || set -- "${P256[@]}"
  openssl req "$@" -nodes -subj "$subj" -keyout "$d/$n.key" -out "$d/$n.csr" 2>/dev/null &&
    openssl x509 -req -in "$d/$n.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" -CAcreateserial \
      -days 7 -extfile "$d/$ext" -out "$d/$n.crt" 2>/dev/null
}

# ---- configuration text ----
tollgate_global() { # dir drain-timeout [max-connections]: tollgate.yaml's version and global
  # sections: one worker, no access log
  local max=''
  [[ -n ${3:-} ]] && max="    max_connections: $3"$'\n'
  cat <<EOF
version: 1
global:
  workers: 1
  pid_file: $1/tollgate.pid
  certificate_dir: $1/store
  log_level: warn
  access_log: off
  drain_timeout: $2
  limits:
${max}    idle_timeout: 300s
EOF
}
tollgate_bench_listener() { # cert: tollgate.yaml's backend (BACKEND_PORT) and an HTTPS listener
  # "bench" on PORT with the policy tls_cipher_policy_1_2_strict_with_1_3 and certificate CERT
  cat <<EOF
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
      default: $1
EOF
}

# nginx and HAProxy as run.sh and reload.sh set them up: TLS 1.2 + 1.3 with the suites of
# tls_cipher_policy_1_2_strict_with_1_3 in its order and the server's preference (so every
# server picks TLS_AES_128_GCM_SHA256), X25519 first, one worker, no access log, keep-alive
# on both sides.
CIPHERS12=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA
CIPHERS13=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256
CURVES=X25519:P-256:P-384

nginx_conf() { # dir cert connections [main] [server] [location]: nginx.conf with $TMP/pki/CERT.crt
  # and .key, CONNECTIONS a worker; MAIN, SERVER, LOCATION: more lines for those blocks
  local d=$1 c=$2 pki=$TMP/pki user='' temps='' m main=${4:+$4$'\n'} srv=${5:+$5$'\n'} loc=${6:+$6$'\n'}
  ((EUID == 0)) && user='user root root;' # workers keep the caller's rights, like the others
  for m in client_body proxy fastcgi uwsgi scgi; do # Debian's defaults are not writable by non-root
    grep -qa "${m}_temp_path" "$(command -v nginx)" && temps+="  ${m}_temp_path $d/tmp-$m;"$'\n'
  done
  cat <<EOF
$user
worker_processes 1;
${main}daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events {
  worker_connections $3;
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
    ssl_certificate $pki/$c.crt;
    ssl_certificate_key $pki/$c.key;
${srv}    ssl_protocols TLSv1.2 TLSv1.3;
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
${loc}    }
  }
}
EOF
}

haproxy_conf() { # dir pem maxconn [global] [bind] [frontend]: haproxy.cfg with certificate and
  # key in PEM; GLOBAL, FRONTEND: more lines for those sections, BIND: more options of the bind line
  local d=$1 glob=${4:+$4$'\n'} fe=${6:+$6$'\n'}
  cat <<EOF
global
  nbthread 1
  maxconn $3
  pidfile $d/haproxy.pid
${glob}  ssl-default-bind-ciphers $CIPHERS12
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
  bind 127.0.0.1:$PORT ssl crt $2 curves $CURVES${5:+ $5}
  option forwardfor
  http-request set-header X-Forwarded-Proto https
  http-request set-header X-Forwarded-Port %[dst_port]
  http-request set-header X-Forwarded-Client-Srcport %[src_port]
${fe}  default_backend app

backend app
  http-reuse always
  server app1 127.0.0.1:$BACKEND_PORT
EOF
}

# ---- processes: the backend, the server (SERVER_PID; start_server is each script's) ----
BACKEND_PID=
start_backend() { # bench/backend on CLIENT_CPU, BACKEND_PORT; it logs to $TMP/backend.log
  local i
  taskset -c "$CLIENT_CPU" "$BENCH/backend" "$BACKEND_PORT" >"$TMP/backend.log" 2>&1 &
  BACKEND_PID=$!
  STARTED+=("$BACKEND_PID")
  for ((i = 0; i < 50; i++)); do port_open "$BACKEND_PORT" && break; sleep 0.1; done
  port_open "$BACKEND_PORT" || die "the backend did not start: $(cat "$TMP/backend.log")"
}

SERVER_PID='' SERVER_NAME='' SERVER_LOG=''
stop_server() { # a status other than 0 or 143 (SIGTERM) is a problem to report (reload.sh has its own)
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
  if alive "$SERVER_PID"; then
    # Another process with SO_REUSEPORT on the same port would take part of the load.
    local p ours others=''
    ours=" $(proc_tree "$SERVER_PID" | paste -sd ' ') "
    for p in $(listeners "$PORT"); do [[ $ours = *" $p "* ]] || others+=" $p"; done
    [[ -z $others ]] && return 0
    ERRORS+=("$SERVER_NAME: other processes also $( ((UDP_TOO)) && echo use || echo listen on) port $PORT (pids$others): skipped $1")
    return 1
  fi
  local st keep
  wait "$SERVER_PID" 2>/dev/null
  st=$?
  keep=$(mktemp -d "${TMPDIR:-/tmp}/$TMP_NAME-died.XXXXXX") && cp -r "$(dirname "$SERVER_LOG")/." "$keep/"
  ERRORS+=("$SERVER_NAME died (status $st) before $1; its log ends: $(tail -n 3 "$SERVER_LOG" 2>/dev/null | tr '\n' ' ') (configuration and logs kept in $keep)")
  forget_pid "$SERVER_PID"
  SERVER_PID=
  return 1
}

# ---- the server's CPU and memory ----
proc_tree() { # pid...: them and their descendants (nginx: master and worker)
  local todo=("$@") p k kids
  while ((${#todo[@]})); do
    p=${todo[0]}
    todo=("${todo[@]:1}")
    [[ -n $p && -d /proc/$p ]] || continue
    echo "$p"
    kids=$(cat /proc/"$p"/task/*/children 2>/dev/null || ps -o pid= --ppid "$p")
    for k in $kids; do todo+=("$k"); done
  done
}
server_pids() { proc_tree "$SERVER_PID"; } # the server's processes (reload.sh has its own)
COUNT_REAPED=0 # 1: the server's CPU includes its children that exited (reload.sh: nginx's old workers)
cpu_ticks() { # user + system clock ticks summed over the server's processes
  local p sum=0 st f
  for p in $(server_pids); do
    st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -ra f <<<"${st##*) }" # fields after the command name; utime and stime are 12th and 13th
    sum=$((sum + f[11] + f[12]))
    ((COUNT_REAPED)) && sum=$((sum + f[13] + f[14])) # cutime, cstime
  done
  echo "$sum"
}
rss_kib() { # VmRSS summed over the server's processes
  local p sum=0 v
  for p in $(server_pids); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
now_ns() { date +%s%N; }
cpu_pct() { # ticks0 ticks1 ns0 ns1 [decimals (1)]: CPU in % of one core
  awk -v a="$1" -v b="$2" -v t0="$3" -v t1="$4" -v hz="$CLK_TCK" -v d="${5:-1}" 'BEGIN { printf "%.*f", d, (b - a) / hz / ((t1 - t0) / 1e9) * 100 }'
}
per_cpu_s() { awk -v a="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.0f", a * 100 / c }'; } # rate cpu%: per server CPU-second

# ---- other processes on the bench CPUs ----
# Other sessions' processes on these CPUs make the numbers noisy: count the CPU time spent on
# them by anything but the server, the backend, and this script with its children (the load
# tools). Interrupt and softirq time is left out: the kernel charges it to no process, and the
# loopback traffic of the measurement itself makes most of it (a third of a core at 30,000
# HTTP/3 requests/s), which would flag the faster server's runs as disturbed.
cpus_busy() { # user, nice, system and steal ticks of CPUS (/proc/stat)
  awk -v cpus="$CPUS" 'BEGIN { n = split(cpus, c, " "); for (i = 1; i <= n; i++) want["cpu" c[i]] = 1 }
    $1 in want { s += $2 + $3 + $4 + $9 } END { print s }' /proc/stat
}
client_ticks() { # this script with its children waited for (the load tools) and the backend
  local f b sum
  read -ra f <<<"$(sed 's/.*) //' /proc/$$/stat)"
  sum=$((f[11] + f[12] + f[13] + f[14])) # utime, stime, and those of the children waited for
  if [[ -n $BACKEND_PID ]]; then
    read -ra b <<<"$(sed 's/.*) //' "/proc/$BACKEND_PID/stat" 2>/dev/null)"
    sum=$((sum + ${b[11]:-0} + ${b[12]:-0}))
  fi
  echo "$sum"
}
own_ticks() { echo $(($(client_ticks) + $(cpu_ticks))); }
MARK=()
mark() { MARK=("$(cpus_busy)" "$(own_ticks)" "$(now_ns)"); }
foreign_pct() { # other processes' CPU since mark, as % of one core
  local b o t
  b=$(cpus_busy) o=$(own_ticks) t=$(now_ns)
  awk -v db=$((b - MARK[0])) -v dn=$((o - MARK[1])) -v dt=$((t - MARK[2])) -v hz="$CLK_TCK" \
    'BEGIN { v = (db - dn) / hz / (dt / 1e9) * 100; printf "%.0f", v < 0 ? 0 : v }'
}
warn_if_busy() { # before the runs: other processes' CPU on CPUS during one second
  local b0 busy
  b0=$(cpus_busy)
  sleep 1
  busy=$((($(cpus_busy) - b0) * 100 / CLK_TCK))
  ((busy > 10)) && log "warning: other processes use ${busy}% of a core on CPUs $CPUS: expect noisy numbers"
  return 0
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

# ---- wrk ----
parse_wrk() { # file: "rps p50_ms p99_ms errors connect read write timeout non2xx"; errors is
  # the sum of wrk's socket errors (the next four) and its non-2xx/3xx responses
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } $1 == "Requests/sec:" { rps = $2 }
    /Non-2xx or 3xx responses:/ { non2xx += $NF }
    /Socket errors:/ { gsub(",", ""); c += $4; r += $6; w += $8; t += $10 }
    END { if (rps == "") exit 1; printf "%s %.3f %.3f %d %d %d %d %d %d", rps, p50, p99, c + r + w + t + non2xx, c, r, w, t, non2xx }' "$1"
}

# ---- results: RES[server:metric:run]; NOISY[server:group:run] marks a disturbed measurement ----
add() { RES[$1:$3:$2]=$4; } # server run metric value
adds() { # server run group name value...: adds GROUP_NAME for each pair
  local s=$1 r=$2 g=$3
  shift 3
  while (($# >= 2)); do add "$s" "$r" "${g}_$1" "$2"; shift 2; done
}
metric_group() { echo "${1%%_*}"; } # metric: its measurement (NOISY's group); run.sh has its own
values() { # server metric clean-only: the runs' values, without noisy ones if clean-only is 1
  local g r picked=()
  g=$(metric_group "$2")
  for ((r = 1; r <= RUNS; r++)); do
    [[ -n ${RES[$1:$2:$r]:-} ]] || continue
    (($3)) && [[ -n ${NOISY[$1:$g:$r]:-} ]] && continue
    picked+=("${RES[$1:$2:$r]}")
  done
  echo "${picked[*]}"
}
median() { tr ' ' '\n' | awk 'NF { a[n++] = $1 } END { if (!n) exit; asort_n(a, n); if (n % 2) print a[(n - 1) / 2]; else print (a[n / 2 - 1] + a[n / 2]) / 2 }
  function asort_n(a, n,   i, j, t) { for (i = 1; i < n; i++) for (j = i; j > 0 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } }'; }
# The median of the clean runs; of all runs when none was clean.
used() { local v; v=$(values "$1" "$2" 1); [[ -n $v ]] || v=$(values "$1" "$2" 0); echo "$v"; }
med() { used "$1" "$2" | median; }
spread() { # server metric: half the range of the runs used, in % of their median
  used "$1" "$2" | tr ' ' '\n' | awk -v m="$(med "$1" "$2")" 'NF { if (n++ == 0 || $1 < lo) lo = $1; if ($1 > hi) hi = $1 }
    END { if (n > 1 && m > 0) printf " ±%.0f%%", (hi - lo) / 2 / m * 100 }'
}
all_noisy() { [[ -n $(values "$1" "$2" 0) && -z $(values "$1" "$2" 1) ]]; }
fmt() { [[ -n $2 ]] && awk -v v="$2" -v d="$1" 'BEGIN { printf "%.*f", d, v }' || printf -- '-'; } # decimals value
ratio() { [[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }' || printf -- '-'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a != "-" && a + 0 >= b + 0) }'; }
STARRED=0 # 1: a cell of the table has only noisy runs (marked *)
server_cells() { # metric decimals [spread]: appends to the caller's variable "line" a table cell
  # for each of SERVERS: the median, * if every run was noisy, "spread": ± the spread
  local s
  for s in $SERVERS; do
    line+=" $(fmt "$2" "$(med "$s" "$1")")"
    all_noisy "$s" "$1" && { line+='*'; STARRED=1; }
    [[ ${3:-} = spread ]] && line+=$(spread "$s" "$1")
    line+=" |"
  done
}
run_interleaved() { # RUNS rounds of bench_server SERVER RUN over SERVERS: interleaved, so drift
  # on the machine hits every server alike
  local r s
  for ((r = 1; r <= RUNS; r++)); do
    for s in $SERVERS; do
      log "run $r/$RUNS: $s"
      bench_server "$s" "$r"
    done
  done
}
print_problems() { # title item...: the items under the title, if any
  (($# > 1)) || return 0
  printf '\n%s:\n' "$1"
  shift
  printf -- '- %s\n' "$@"
}

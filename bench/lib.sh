# Shell helpers shared by the benchmarks (sourced by bench/*/run.sh after they define
# log()).

stop_pid() {  # stop_pid PID NAME: TERM, wait up to 5 s, then KILL
  local pid="$1" name="$2" i
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) did not stop on TERM; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# The *_temp_path lines of an nginx config, kept under $tmp/nginx-tmp (only for the
# modules compiled in: nginx-light omits some).
nginx_temp_paths() {
  local m paths="    client_body_temp_path $tmp/nginx-tmp/body;
    proxy_temp_path $tmp/nginx-tmp/proxy;"
  for m in fastcgi uwsgi scgi; do
    if ! nginx -V 2>&1 | grep -q -- "--without-http_${m}_module"; then
      paths+="
    ${m}_temp_path $tmp/nginx-tmp/$m;"
    fi
  done
  mkdir -p "$tmp/nginx-tmp"
  printf '%s' "$paths"
}

# Checks $tmp/nginx.conf and starts nginx on SERVER_CPU in the background (nginx_pid).
launch_nginx() {
  nginx -t -q -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" -p "$tmp" ||
    die "nginx rejected the generated config $tmp/nginx.conf (see $tmp/nginx-error.log)"
  taskset -c "$SERVER_CPU" nginx -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" -p "$tmp" \
    >"$tmp/nginx.stdout" 2>"$tmp/nginx.stderr" &
  nginx_pid=$!
}

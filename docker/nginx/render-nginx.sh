#!/bin/sh
# Render nginx.conf.template into an nginx.conf. Used by the image's entrypoint and by
# tests/test_front_proxy.py, so both run exactly the same configuration.
#
#   render-nginx.sh TEMPLATE OUT
#
# Environment, with defaults:
#   NGINX_LISTEN        8080 (address:port or port)
#   NGINX_WEB_SERVERS   web:8000 (comma-separated host:port of the gunicorn instances)
#   NGINX_PUSH_SERVERS  the web servers (the live-push processes once they exist)
#   NGINX_HOOKS_SERVERS the web servers (Twilio's webhook processes, `hotline web --only twilio`)
#   NGINX_STATE_DIR     /run/nginx-hotline (pid, temporary files; writable)
#   NGINX_ACCESS_LOG    /dev/stdout     NGINX_ERROR_LOG  /dev/stderr
#   NGINX_USER          unset: workers run as the master's user (the image: www-data)
#   NGINX_TLS_LISTEN, NGINX_TLS_CERT, NGINX_TLS_KEY: all three to terminate TLS here
set -eu
template=${1:?usage: render-nginx.sh TEMPLATE OUT}
out=${2:?usage: render-nginx.sh TEMPLATE OUT}
: "${NGINX_LISTEN:=8080}" "${NGINX_WEB_SERVERS:=web:8000}"
: "${NGINX_PUSH_SERVERS:=$NGINX_WEB_SERVERS}" "${NGINX_HOOKS_SERVERS:=$NGINX_WEB_SERVERS}"
: "${NGINX_STATE_DIR:=/run/nginx-hotline}"
: "${NGINX_ACCESS_LOG:=/dev/stdout}" "${NGINX_ERROR_LOG:=/dev/stderr}"

servers() {  # "a:1,b:2" -> one upstream server line each
  echo "$1" | tr ',' '\n' | while read -r server; do
    [ -n "$server" ] && printf '        server %s max_fails=3 fail_timeout=5s;\n' "$server"
  done
}
NGINX_WEB_UPSTREAM=$(servers "$NGINX_WEB_SERVERS")
NGINX_PUSH_UPSTREAM=$(servers "$NGINX_PUSH_SERVERS")
NGINX_HOOKS_UPSTREAM=$(servers "$NGINX_HOOKS_SERVERS")
[ -n "$NGINX_WEB_UPSTREAM" ] || { echo "NGINX_WEB_SERVERS is empty" >&2; exit 1; }
NGINX_USER_LINE=""
[ -n "${NGINX_USER:-}" ] && NGINX_USER_LINE="user ${NGINX_USER};"
NGINX_TLS=""
if [ -n "${NGINX_TLS_LISTEN:-}" ]; then
  : "${NGINX_TLS_CERT:?set NGINX_TLS_CERT with NGINX_TLS_LISTEN}"
  : "${NGINX_TLS_KEY:?set NGINX_TLS_KEY with NGINX_TLS_LISTEN}"
  NGINX_TLS="        listen ${NGINX_TLS_LISTEN} ssl default_server;
        ssl_certificate ${NGINX_TLS_CERT};
        ssl_certificate_key ${NGINX_TLS_KEY};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:tls:10m;"
fi
export NGINX_LISTEN NGINX_STATE_DIR NGINX_ACCESS_LOG NGINX_ERROR_LOG NGINX_USER_LINE \
  NGINX_WEB_UPSTREAM NGINX_PUSH_UPSTREAM NGINX_HOOKS_UPSTREAM NGINX_TLS
mkdir -p "$NGINX_STATE_DIR"
# Only our variables: nginx's own ($host, $scheme, ...) stay as they are.
envsubst '${NGINX_LISTEN} ${NGINX_STATE_DIR} ${NGINX_ACCESS_LOG} ${NGINX_ERROR_LOG}
  ${NGINX_USER_LINE} ${NGINX_WEB_UPSTREAM} ${NGINX_PUSH_UPSTREAM} ${NGINX_HOOKS_UPSTREAM}
  ${NGINX_TLS}' \
  < "$template" > "$out"

#!/bin/sh
# Render the configuration from the environment (render-nginx.sh), check it, and run
# nginx in the foreground as this (unprivileged) user.
set -eu
/usr/local/bin/hotline-render-nginx /etc/nginx/hotline/nginx.conf.template "$NGINX_STATE_DIR/nginx.conf"
nginx -e stderr -t -q -c "$NGINX_STATE_DIR/nginx.conf"
exec nginx -e stderr -c "$NGINX_STATE_DIR/nginx.conf" -g 'daemon off;'

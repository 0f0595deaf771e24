#!/bin/sh
# Secrets come from the environment and the seat-secrets file at start-up, never from
# the repository (see render-config.sh for the variables).
set -eu
/usr/local/bin/hotline-render-config /etc/asterisk/templates /etc/asterisk
chgrp asterisk /etc/asterisk/manager.conf /etc/asterisk/pjsip.conf /etc/asterisk/pjsip_seats.conf
exec asterisk -f -U asterisk -G asterisk

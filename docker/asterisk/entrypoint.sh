#!/bin/sh
# Secrets come from the environment at start-up, never from the repository.
set -eu
: "${ASTERISK_AMI_SECRET:?set ASTERISK_AMI_SECRET}"
: "${TRUNK_HOST:?set TRUNK_HOST (the carrier delivering 12345)}"
: "${TRUNK_USERNAME:?set TRUNK_USERNAME}" "${TRUNK_PASSWORD:?set TRUNK_PASSWORD}"
: "${SEAT_PASSWORD:?set SEAT_PASSWORD (operator phones)}"
envsubst < /etc/asterisk/templates/manager.conf.template > /etc/asterisk/manager.conf
envsubst < /etc/asterisk/templates/pjsip.conf.template > /etc/asterisk/pjsip.conf
chmod 640 /etc/asterisk/manager.conf /etc/asterisk/pjsip.conf
exec asterisk -f -U asterisk -G asterisk

#!/bin/sh
# Secrets come from the environment and the seat-secrets file at start-up, never from
# the repository (see render-config.sh for the variables).
#   RTP_START, RTP_END: the RTP port range (default 10000-10999); publish the same range.
#   ASTERISK_SYSTEM_NAME: this box's name, which starts its call ids; required when two
#   boxes share the queue (docs/operations.md, "Two Asterisk boxes").
set -eu
# The dialplan puts it in every AGI URL (extensions.conf); the AGI server demands it.
: "${HOTLINE_AGI_SECRET:?set HOTLINE_AGI_SECRET}"
/usr/local/bin/hotline-render-config /etc/asterisk/templates /etc/asterisk
printf '[general]\nrtpstart = %s\nrtpend = %s\n' "${RTP_START:-10000}" "${RTP_END:-10999}" \
  > /etc/asterisk/rtp.conf
sed -i '/^systemname *=/d' /etc/asterisk/asterisk.conf  # [options] is the last section
if [ -n "${ASTERISK_SYSTEM_NAME:-}" ]; then
  printf '%s' "$ASTERISK_SYSTEM_NAME" | grep -Eq '^[0-9A-Za-z-]{1,24}$' \
    || { echo "ASTERISK_SYSTEM_NAME must be 1-24 letters, digits or -" >&2; exit 1; }
  printf 'systemname = %s\n' "$ASTERISK_SYSTEM_NAME" >> /etc/asterisk/asterisk.conf
fi
# Recordings: Asterisk writes them, the hotline containers (group recordings, the same
# gid in both images) play, link and delete them; new files take the folder's group.
chgrp recordings /var/lib/hotline/recordings && chmod 2775 /var/lib/hotline/recordings
chgrp asterisk /etc/asterisk/manager.conf /etc/asterisk/pjsip.conf /etc/asterisk/pjsip_seats.conf
exec asterisk -C /etc/asterisk/asterisk.conf -f -U asterisk -G asterisk

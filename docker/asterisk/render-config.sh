#!/bin/sh
# Render the Asterisk configuration that carries secrets, from the environment and a
# seat-secrets file, into a config folder. Used by the container's entrypoint and by
# the real-Asterisk test suite, so both load exactly the same files.
#
#   render-config.sh TEMPLATE_DIR OUT_DIR
#
# Environment (required): ASTERISK_AMI_SECRET TRUNK_HOST TRUNK_USERNAME TRUNK_PASSWORD
# Optional, with defaults: TRUNK_PORT (5060), SIP_BIND (0.0.0.0:5060), AMI_BIND (0.0.0.0),
#   AMI_PORT (5038), AMI_PERMIT (172.16.0.0/255.240.0.0, Docker's internal networks),
#   SEAT_SECRETS_FILE (/run/secrets/seat_passwords): one "SEAT PASSWORD" per line;
#   every seat gets its own SIP password.
# Behind NAT (optional): EXTERNAL_MEDIA_ADDRESS and EXTERNAL_SIGNALING_ADDRESS (the
#   public address in SDP and SIP headers), LOCAL_NET (comma-separated networks that
#   are reached directly, e.g. 10.0.0.0/8,172.16.0.0/12).
# A second Asterisk box sharing the queue (optional): PEER_BOX_HOST (its address),
#   PEER_BOX_PORT (5060), PEER_BOX_NAME (box-b): the trunk to it, named PEER_BOX_NAME.
set -eu
templates=${1:?usage: render-config.sh TEMPLATE_DIR OUT_DIR}
out=${2:?usage: render-config.sh TEMPLATE_DIR OUT_DIR}
: "${ASTERISK_AMI_SECRET:?set ASTERISK_AMI_SECRET}"
: "${TRUNK_HOST:?set TRUNK_HOST (the carrier delivering 12345)}"
: "${TRUNK_USERNAME:?set TRUNK_USERNAME}" "${TRUNK_PASSWORD:?set TRUNK_PASSWORD}"
: "${TRUNK_PORT:=5060}" "${SIP_BIND:=0.0.0.0:5060}"
: "${AMI_BIND:=0.0.0.0}" "${AMI_PORT:=5038}" "${AMI_PERMIT:=172.16.0.0/255.240.0.0}"
: "${SEAT_SECRETS_FILE:=/run/secrets/seat_passwords}"
PJSIP_TRANSPORT_NAT=""
if [ -n "${EXTERNAL_MEDIA_ADDRESS:-}" ]; then
  PJSIP_TRANSPORT_NAT="external_media_address = ${EXTERNAL_MEDIA_ADDRESS}"
fi
if [ -n "${EXTERNAL_SIGNALING_ADDRESS:-}" ]; then
  PJSIP_TRANSPORT_NAT="${PJSIP_TRANSPORT_NAT}
external_signaling_address = ${EXTERNAL_SIGNALING_ADDRESS}"
fi
for net in $(echo "${LOCAL_NET:-}" | tr ',' ' '); do
  PJSIP_TRANSPORT_NAT="${PJSIP_TRANSPORT_NAT}
local_net = ${net}"
done
PJSIP_PEER_BOX=""
if [ -n "${PEER_BOX_HOST:-}" ]; then
  peer=${PEER_BOX_NAME:-box-b}
  if ! printf '%s' "$peer" | grep -Eq '^[0-9A-Za-z_-]{1,32}$'; then
    echo "PEER_BOX_NAME '$peer' must be 1-32 letters, digits, _ or -" >&2; exit 1
  fi
  peer_at="${PEER_BOX_HOST}:${PEER_BOX_PORT:-5060}"
  PJSIP_PEER_BOX=$(printf '[%s]\ntype = aor\ncontact = sip:%s\nqualify_frequency = 15\n\n' "$peer" "$peer_at"
    printf '[%s]\ntype = endpoint\ncontext = hotline-from-box\ndisallow = all\nallow = alaw,ulaw\n' "$peer"
    printf 'aors = %s\ndtmf_mode = rfc4733\ndirect_media = no\n\n' "$peer"
    printf '[%s-identify]\ntype = identify\nendpoint = %s\nmatch = %s\n' "$peer" "$peer" "$peer_at")
fi
export TRUNK_PORT SIP_BIND AMI_BIND AMI_PORT AMI_PERMIT PJSIP_TRANSPORT_NAT PJSIP_PEER_BOX
[ -r "$SEAT_SECRETS_FILE" ] || { echo "cannot read SEAT_SECRETS_FILE=$SEAT_SECRETS_FILE" >&2; exit 1; }

umask 027
envsubst < "$templates/manager.conf.template" > "$out/manager.conf"
envsubst < "$templates/pjsip.conf.template" > "$out/pjsip.conf"

# One endpoint, auth and aor per seat, each with its own password.
seats="$out/pjsip_seats.conf"
: > "$seats"
count=0
while read -r seat password rest || [ -n "$seat" ]; do
  case "$seat" in ''|'#'*) continue ;; esac
  if ! printf '%s' "$seat" | grep -Eq '^[0-9A-Za-z_-]{1,32}$'; then
    echo "seat id '$seat' must be 1-32 letters, digits, _ or -" >&2; exit 1
  fi
  case "$seat" in trunk|anonymous|"${PEER_BOX_NAME:-box-b}")
    echo "seat id '$seat' is the name of a trunk, not a phone" >&2; exit 1 ;;
  esac
  if [ -z "$password" ] || [ -n "$rest" ] || [ ${#password} -lt 12 ]; then
    echo "seat $seat needs one password of at least 12 characters, no spaces" >&2; exit 1
  fi
  printf '[%s](seat)\nauth = %s\naors = %s\n[%s](seat-auth)\nusername = %s\npassword = %s\n[%s](seat-aor)\n\n' \
    "$seat" "$seat" "$seat" "$seat" "$seat" "$password" "$seat" >> "$seats"
  count=$((count + 1))
done < "$SEAT_SECRETS_FILE"
[ "$count" -gt 0 ] || { echo "no seats in $SEAT_SECRETS_FILE" >&2; exit 1; }
echo "rendered manager.conf, pjsip.conf and $count seats into $out"

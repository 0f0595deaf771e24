"""SIPp (Debian's sip-tester) as the carrier trunk and as the operators' phones.

Scenarios are written per test from the templates below, so a test states its ring
delay, talk time, keypress and hang-up time in milliseconds. Citizens call from the
trunk's own loopback address (Asterisk identifies the trunk by address) with numbers
as Chinese carriers deliver them; phones register with their own seat credentials and
answer INVITEs at the contact they registered.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SIPP = shutil.which("sipp")
# SIPp takes the media port given and the one two above it (video). Below both the
# kernel's ephemeral ports and Asterisk's RTP range (20000-29999 in the tests).
_media_ports = itertools.count(10000 + (os.getpid() % 400) * 20, 4)


def media_port() -> int:
    while True:
        port = next(_media_ports)
        if port > 19990:
            raise RuntimeError("out of media ports")
        try:
            for p in (port, port + 2):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


DTMF_PCAP = "/usr/share/sip-tester/dtmf_2833_{digit}.pcap"
VOICE_PCAP = "/usr/share/sip-tester/g711a.pcap"  # several seconds of a voice (A-law)

_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n'

_INVITE = """
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[local_ip]:[local_port]>;tag=[call_number]SIPpTag00
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[local_ip]:[local_port]>;tag=[call_number]SIPpTag00
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""

_CALLER_BYE = """
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[local_ip]:[local_port]>;tag=[call_number]SIPpTag00
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
"""

_AWAIT_BYE = """
  <recv request="BYE" timeout="{timeout_ms}"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"""

_REGISTER = """
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{seat}@[remote_ip]:[remote_port]>;tag=[call_number]reg
      To: <sip:{seat}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:{seat}@[local_ip]:{contact_port}>
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{seat}@[remote_ip]:[remote_port]>;tag=[call_number]reg
      To: <sip:{seat}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:{seat}@[local_ip]:{contact_port}>
      [authentication username={seat} password={password}]
      Expires: 3600
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
"""

_PHONE_INVITE = """
  <recv request="INVITE" crlf="true" rrs="true">{capture}</recv>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
"""

_PHONE_ANSWER = """
  <pause milliseconds="{ring_ms}"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$local_to];tag=[pid]SIPpTag01[call_number]
      To: [$remote_from]
      [routes]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
"""

_PHONE_NEVER = """
  <recv request="CANCEL"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <send>
    <![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [cseq] INVITE
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
"""

# A citizen's phone called by the dialer (through the trunk): rings, answers with
# telephone-event, presses a key some seconds later, and waits for the hotline's BYE.
_CALLED_ANSWERS = """
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag02[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="{ring_ms}"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag02[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {codecs} 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <pause milliseconds="{press_after_ms}"/>
"""
_PRESS = '  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'

_CALLED_BUSY = """
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag02[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
"""

_TAIL = "\n</scenario>\n"


def citizen_scenario(
    *,
    keys: list[tuple[int, str]] = (),  # type: ignore[assignment]
    hangup_after_ms: int | None = None,
    wait_for_bye_ms: int = 180_000,
) -> str:
    """A citizen's call from the trunk: presses keys at times after the answer, then
    hangs up at ``hangup_after_ms`` or waits for the centre to hang up."""
    body = _INVITE
    elapsed = 0
    for at_ms, digit in sorted(keys):
        body += f'  <pause milliseconds="{max(0, at_ms - elapsed)}"/>\n'
        body += f'  <nop><action><exec play_pcap_audio="{DTMF_PCAP.format(digit=digit)}"/>'
        body += "</action></nop>\n"
        elapsed = at_ms
    if hangup_after_ms is not None:
        body += f'  <pause milliseconds="{max(0, hangup_after_ms - elapsed)}"/>\n' + _CALLER_BYE
    else:
        body += _AWAIT_BYE.format(timeout_ms=wait_for_bye_ms)
    return _HEAD.format(name="citizen") + body + _TAIL


def phone_scenario(*, ring_ms: int | None, talk_ms: int = 2000) -> str:
    """An operator's phone: rings ``ring_ms`` then talks ``talk_ms`` and hangs up, or
    (ring_ms None) never answers until the caller gives up."""
    tail = (
        _PHONE_NEVER if ring_ms is None else _PHONE_ANSWER.format(ring_ms=ring_ms, talk_ms=talk_ms)
    )
    # SIPp refuses a variable that is assigned and never used: capture only for the BYE.
    capture = (
        ""
        if ring_ms is None
        else (
            '<action><ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>'
            '<ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_to"/></action>'
        )
    )
    return _HEAD.format(name="phone") + _PHONE_INVITE.format(capture=capture) + tail + _TAIL


def called_scenario(
    *,
    answer: bool | None,
    ring_ms: int = 2000,
    press_after_ms: int = 0,
    digit: str | None = "1",
    machine: bool = False,
) -> str:
    """A citizen's phone the dialer calls: answers and presses ``digit`` (None: says
    nothing), is busy (``answer`` False), or rings until the hotline gives up (None).
    ``machine``: an answering machine's long greeting starts as soon as it answers."""
    if answer is None:
        never = _PHONE_INVITE.format(capture="") + _PHONE_NEVER
        return _HEAD.format(name="called-never") + never + _TAIL
    if not answer:
        return _HEAD.format(name="called-busy") + _CALLED_BUSY + _TAIL
    body = _CALLED_ANSWERS.format(
        ring_ms=ring_ms, press_after_ms=press_after_ms, codecs="8 0" if machine else "0 8"
    )
    if machine:
        body += _PRESS.format(pcap=VOICE_PCAP)
    elif digit is not None:  # None: silence, no key at all
        body += _PRESS.format(pcap=DTMF_PCAP.format(digit=digit))
    return _HEAD.format(name="called") + body + _AWAIT_BYE.format(timeout_ms=60000) + _TAIL


def called(workdir: Path, name: str, port: int, **scenario: object) -> SippProcess:
    """One citizen's phone on 127.0.0.3:``port``, for the dialer to call."""
    return _sipp(
        workdir,
        name,
        called_scenario(**scenario),  # type: ignore[arg-type]
        ["-i", "127.0.0.3", "-p", str(port), "-mp", str(media_port()), "-m", "1", "-aa"],
    )


def register_scenario(seat: str, password: str, contact_port: int) -> str:
    return (
        _HEAD.format(name="register")
        + _REGISTER.format(seat=seat, password=password, contact_port=contact_port)
        + _TAIL
    )


@dataclass
class SippProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def output(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        errors = self.log.with_suffix(".errors")
        if errors.exists():
            text += "\n--- errors ---\n" + errors.read_text(errors="replace")[-3000:]
        return text


def _sipp(workdir: Path, name: str, scenario: str, args: list[str]) -> SippProcess:
    assert SIPP, "sipp is not installed (apt-get install sip-tester)"
    workdir.mkdir(parents=True, exist_ok=True)
    xml = workdir / f"{name}.xml"
    xml.write_text(scenario)
    log = workdir / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                SIPP,
                "-sf",
                str(xml),
                "-nostdin",
                "-trace_err",
                "-error_file",
                str(workdir / f"{name}.errors"),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    return SippProcess(name, process, log)


def register(
    workdir: Path, asterisk_port: int, seat: str, password: str, contact_port: int
) -> None:
    """Register a seat's phone with its own credentials; fails the test if refused."""
    from tests.real_asterisk import free_port

    proc = _sipp(
        workdir,
        f"register-{seat}",
        register_scenario(seat, password, contact_port),
        [
            f"127.0.0.1:{asterisk_port}",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port(__import__("socket").SOCK_DGRAM)),
            "-m",
            "1",
            "-timeout",
            "10s",
            "-timeout_error",
        ],
    )
    code = proc.wait(timeout=20)
    assert code == 0, f"seat {seat} could not register:\n{proc.output()[-2000:]}"


def phone(
    workdir: Path,
    seat: str,
    port: int,
    *,
    ring_ms: int | None,
    talk_ms: int = 2000,
    calls: int = 1000,
    trace: bool = False,
) -> SippProcess:
    """An operator's phone answering INVITEs on ``port`` (where it registered).
    ``trace`` logs every SIP message with its time (phone-SEAT.messages)."""
    media = media_port()
    tracing = ["-trace_msg", "-message_file", str(workdir / f"phone-{seat}.messages")]
    return _sipp(
        workdir,
        f"phone-{seat}",
        phone_scenario(ring_ms=ring_ms, talk_ms=talk_ms),
        [
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-mp",
            str(media),
            "-m",
            str(calls),
            "-aa",
            "-default_behaviors",
            "all,-bye",
            *(tracing if trace else []),
        ],
    )


def custom_citizen(
    workdir: Path,
    name: str,
    asterisk_port: int,
    number: str,
    scenario: str,
    *,
    local_port: int,
    dialed: str = "12345",
) -> SippProcess:
    """One citizen, ``number``, calling ``dialed`` from the trunk address with a scenario
    of the test's own (what they say, when they hang up)."""
    csv = workdir / f"{name}.csv"
    workdir.mkdir(parents=True, exist_ok=True)
    csv.write_text(f"SEQUENTIAL\n{number};\n")
    return _sipp(
        workdir,
        name,
        scenario,
        [
            f"127.0.0.1:{asterisk_port}",
            *("-i", "127.0.0.2", "-p", str(local_port), "-mp", str(media_port())),
            *("-s", dialed, "-inf", str(csv), "-m", "1", "-aa"),
        ],
    )


def citizens(
    workdir: Path,
    name: str,
    asterisk_port: int,
    numbers: list[str],
    *,
    dialed: str = "12345",
    rate_per_s: float = 10,
    local_port: int,
    **scenario: object,
) -> SippProcess:
    """``len(numbers)`` citizens calling ``dialed`` from the trunk address."""
    csv = workdir / f"{name}.csv"
    workdir.mkdir(parents=True, exist_ok=True)
    csv.write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in numbers))
    return _sipp(
        workdir,
        name,
        citizen_scenario(**scenario),  # type: ignore[arg-type]
        [
            f"127.0.0.1:{asterisk_port}",
            "-i",
            "127.0.0.2",
            "-p",
            str(local_port),
            "-mp",
            str(media_port()),
            "-s",
            dialed,
            "-inf",
            str(csv),
            "-m",
            str(len(numbers)),
            "-l",
            str(len(numbers)),
            "-r",
            str(rate_per_s),
            "-rp",
            "1000",
            "-aa",
        ],
    )


def wait_all(procs: list[SippProcess], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    codes = {}
    for p in procs:
        codes[p.name] = p.wait(timeout=max(1, deadline - time.monotonic()))
    return codes

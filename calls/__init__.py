"""The shell core every telephony adapter shares (Asterisk, Twilio, the simulator): it
keeps each call's flow state in Redis, steps the pure flow in ivr/, and carries out the
queue transitions and case jobs the flow asks for."""

from calls.handler import RQ_QUEUE, CallerDirectory, CallHandler, CaseSweep, job_id_for

__all__ = ["RQ_QUEUE", "CallHandler", "CallerDirectory", "CaseSweep", "job_id_for"]

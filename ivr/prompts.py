"""The prompt catalogue: every sentence a caller can hear, Mandarin first, English second.

Sentences are short and plain, one thing at a time, for elderly callers. The greeting
stays under 8 seconds of speech at the slow rate we render with. ``{name}`` fields are
filled from an action's args; numbers are read out by the shell (Asterisk: SAY NUMBER
in zh; Twilio: <Say> of the text).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

STATUS_WORDS = {
    "received": ("已受理", "received"),
    "dispatched": ("已转交承办单位", "passed to the responsible department"),
    "accepted": ("承办单位已接收", "accepted by the department"),
    "in_progress": ("正在办理", "being handled"),
    "resolved": ("已办结，等待回访", "resolved, awaiting your feedback"),
    "reopened": ("已重新办理", "reopened"),
    "closed": ("已办结", "closed"),
}


@dataclass(frozen=True)
class Prompt:
    zh: str
    en: str

    def text(self, language: str = "zh", **args: object) -> str:
        template = self.zh if language == "zh" else self.en
        return template.format(**args)


CATALOGUE: dict[str, Prompt] = {
    "greeting": Prompt(
        # 全程录音: the recording notice, within the 8 s a caller hears before a person.
        "您好，12345热线，全程录音，马上转人工。",
        "Hello, this is the 12345 citizen service line. Calls are recorded. "
        "Please hold for an operator.",
    ),
    "language_menu": Prompt(
        "讲海南话请按1。For English, press 2。",
        "For Hainanese, press 1. For English, press 2.",
    ),
    "language_chosen": Prompt("好的，请稍候。", "Thank you, please hold."),
    # Once, to callers who skip the language menu (registered elderly, repeat callers).
    "dialect_offer": Prompt("讲海南话请按1。", "For Hainanese, press 1."),
    "case_status": Prompt(
        "您的工单{case_number}，{status_zh}。全程录音，正在为您转接人工服务。",
        "Your case {case_number} is {status_en}. Calls are recorded. "
        "Connecting you to an operator.",
    ),
    "queue_position": Prompt(
        "您前面还有{position}位，预计等待{minutes}分钟。请不要挂机。",
        "There are {position} callers ahead of you, about {minutes} minutes. Please hold.",
    ),
    "queue_next": Prompt(
        "您是下一位，请不要挂机。",
        "You are next. Please hold.",
    ),
    "callback_offer": Prompt(
        "现在等待时间较长。需要我们给您回电，请按1。继续等待，请不要挂机。",
        "The wait is long. To be called back, press 1. To keep waiting, stay on the line.",
    ),
    "callback_confirmed": Prompt(
        "好的，我们会尽快给您回电。再见。",
        "Thank you. We will call you back soon. Goodbye.",
    ),
    "no_operators": Prompt(
        "现在没有话务员在线。我们已记下您的电话，会尽快给您回电。再见。",
        "No operator is available now. We have your number and will call you back. Goodbye.",
    ),
    "goodbye": Prompt("感谢您的来电，再见。", "Thank you for calling. Goodbye."),
    # Outbound: the callback of a missed call or a callback request.
    "callback_intro": Prompt(
        "您好，这里是12345热线，给您回电。请稍候，马上转人工。",
        "Hello, this is the 12345 line calling you back. Please hold for an operator.",
    ),
    # Outbound: the return visit (回访) after a case is resolved, one thing at a time.
    "visit_intro": Prompt(
        "您好，12345热线回访，全程录音。关于您{month}月{day}日反映的问题，已经办理。",
        "Hello, this is the 12345 line; this call is recorded. About the matter you raised "
        "on {month}/{day}: it has been handled.",
    ),
    "visit_question": Prompt(
        "满意请按1，不满意请按2。转人工请按0。",
        "If you are satisfied, press 1. If not, press 2. For an operator, press 0.",
    ),
    "visit_thanks": Prompt("感谢您的评价，再见。", "Thank you for your answer. Goodbye."),
    "visit_sorry": Prompt(
        "很抱歉，我们会重新办理。再见。",
        "We are sorry. It will be handled again. Goodbye.",
    ),
    "visit_goodbye": Prompt("感谢您接听，再见。", "Thank you for taking our call. Goodbye."),
    "visit_transfer": Prompt("好的，正在为您转人工，请稍候。", "Connecting you to an operator."),
}


def render(prompt_id: str, language: str = "zh", **args: object) -> str:
    """The sentence for a prompt id, with its fields filled."""
    if "status" in args and isinstance(args["status"], str):
        zh, en = STATUS_WORDS.get(args["status"], (args["status"], args["status"]))
        args = {**args, "status_zh": zh, "status_en": en}
    return CATALOGUE[prompt_id].text(language, **args)


SPOKEN_CHARS_PER_S = {"zh": 3.5, "en": 12.0}  # slow, plain speech for elderly callers


def spoken_seconds(prompt_id: str, language: str = "zh", **args: object) -> float:
    """About how long text-to-speech takes to say a prompt: for a telephony that speaks
    before it dials (Twilio), so the seat's ring lease can allow for it."""
    return len(render(prompt_id, language, **args)) / SPOKEN_CHARS_PER_S[language]


MAX_NUMBER = 120


def sound_files(prompt_id: str, args: dict[str, object], language: str = "zh") -> list[str]:
    """The files (names without .wav) that speak a prompt, in order: fixed fragments with
    numbers, digits and status words between them."""
    prompt = CATALOGUE[prompt_id]
    template = prompt.zh if language == "zh" else prompt.en
    parsed = list(string.Formatter().parse(template))
    if len(parsed) == 1 and parsed[0][1] is None:
        return [prompt_id]
    files: list[str] = []
    for i, (literal, field_name, _, _) in enumerate(parsed):
        if literal.strip(" ，。,."):
            files.append(f"{prompt_id}.{i}")
        if field_name is None:
            continue
        value = args.get(field_name.removesuffix("_zh").removesuffix("_en"), "")
        if field_name.startswith("status"):
            files.append(f"status/{value}")
        elif isinstance(value, int) and 0 <= value <= MAX_NUMBER:
            files.append(f"num/{value}")
        else:  # case numbers and large numbers: digit by digit
            files.extend(f"digit/{d}" for d in str(value) if d.isdigit())
    return files

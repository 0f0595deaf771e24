"""The words on the screens, zh-CN first, then English."""

from __future__ import annotations

from datetime import timedelta

LANGUAGES = ("zh", "en")

PAUSE_REASONS = ("lunch", "training", "meeting", "after_call_work", "other")

TEXT: dict[str, tuple[str, str]] = {
    "app": ("12345 市民服务热线", "12345 Citizen Hotline"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "bad_login": ("用户名或密码不正确", "Wrong user name or password"),
    "language": ("English", "中文"),
    "forbidden": ("您没有权限打开此页面", "You may not open this page"),
    "console": ("坐席工作台", "Operator console"),
    "wallboard": ("班长监控大屏", "Supervisor wallboard"),
    "department_portal": ("部门工作台", "Department portal"),
    "portal_soon": ("派单与办理功能即将上线。", "Dispatch and case handling arrive next."),
    "seat": ("坐席", "Seat"),
    "log_in_seat": ("签入坐席", "Log in to seat"),
    "log_out_seat": ("签出", "Log out of seat"),
    "state_offline": ("未签入", "Offline"),
    "state_available": ("空闲", "Available"),
    "state_offered": ("振铃中", "Ringing"),
    "state_on_call": ("通话中", "On a call"),
    "state_wrap_up": ("话后处理", "Wrap-up"),
    "state_paused": ("小休", "Paused"),
    "ready": ("就绪", "Ready"),
    "pause": ("小休", "Pause"),
    "pause_after_call": ("本通话后小休", "Pause after this call"),
    "pause_after_set": ("本通话后将小休：{reason}", "Pausing after this call: {reason}"),
    "cancel": ("取消", "Cancel"),
    "reason_lunch": ("用餐", "Lunch"),
    "reason_training": ("培训", "Training"),
    "reason_meeting": ("会议", "Meeting"),
    "reason_after_call_work": ("话后工作", "After-call work"),
    "reason_other": ("其他", "Other"),
    "reason_supervisor": ("班长置忙", "Paused by supervisor"),
    "reason_break": ("小休", "Break"),
    "in_state": ("已持续", "for"),
    "wrapup_left": ("话后处理剩余", "Wrap-up left"),
    "extend": ("延长 30 秒", "Extend 30 s"),
    "incoming": ("来电", "Incoming call"),
    "caller": ("来电号码", "Caller"),
    "name": ("姓名", "Name"),
    "vulnerable": ("老年/特殊群体", "Elderly / vulnerable"),
    "skill": ("语种", "Language"),
    "skill_mandarin": ("普通话", "Mandarin"),
    "skill_hainanese": ("海南话", "Hainanese"),
    "skill_english": ("英语", "English"),
    "hotline": ("来源热线", "Source hotline"),
    "waited": ("等待", "Waited"),
    "pressed": ("按键", "Pressed"),
    "callback_call": ("回拨来电", "Callback"),
    "callback_for": ("回拨：{at} 的来电", "Callback for the call of {at}"),
    "cases_of_caller": ("该来电人的工单", "This caller's cases"),
    "no_cases": ("无历史工单", "No earlier cases"),
    "case_form": ("工单", "Case"),
    "category": ("诉求类别", "Category"),
    "suggested_department": ("建议承办单位", "Suggested department"),
    "district": ("区", "District"),
    "address": ("地址", "Address"),
    "description": ("诉求内容", "Description"),
    "urgency": ("紧急程度", "Urgency"),
    "urgency_normal": ("一般", "Normal"),
    "urgency_urgent": ("紧急", "Urgent"),
    "outcome": ("办理方式", "Outcome"),
    "resolved_on_phone": ("直接办结", "Resolved on the phone"),
    "to_dispatch": ("派单", "To dispatch"),
    "attach_to": ("并入已有工单（催办）", "Attach to open case (urging)"),
    "new_case": ("— 新建工单 —", "— a new case —"),
    "field_attach_to": ("并入工单", "Attach to case"),
    "submit": ("提交工单", "Submit case"),
    "filed": ("已提交：工单 {number}（{status}）", "Filed: case {number} ({status})"),
    "urged": ("已并入工单 {number}，记为催办", "Attached to case {number} as an urging"),
    "kept": ("已保存，稍后写入", "Saved; it will be filed shortly"),
    "no_call": ("当前无通话", "No call"),
    "my_day": ("今日", "Today"),
    "calls_taken": ("接听量", "Calls taken"),
    "aht": ("平均处理时长", "Average handle time"),
    "waiting_calls": ("排队来电", "Waiting calls"),
    "priority": ("优先级", "Priority"),
    "priority_vulnerable": ("老年/特殊", "Vulnerable"),
    "priority_repeat": ("重复来电", "Repeat"),
    "priority_normal": ("普通", "Normal"),
    "count": ("数量", "Count"),
    "longest_wait": ("最长等待", "Longest wait"),
    "seats": ("坐席状态", "Seats"),
    "state": ("状态", "State"),
    "reason": ("原因", "Reason"),
    "current_caller": ("当前来电", "Current caller"),
    "calls_today": ("今日接听", "Calls today"),
    "actions": ("操作", "Actions"),
    "force_logout": ("强制签出", "Log out"),
    "end_wrapup": ("结束话后", "End wrap-up"),
    "todays_figures": ("今日指标", "Today's figures"),
    "offered": ("呼入量", "Offered"),
    "answered": ("接通量", "Answered"),
    "abandoned": ("放弃量", "Abandoned"),
    "connection_rate": ("人工接通率", "Connection rate"),
    "within_15s": ("15秒接通率", "Answered within 15 s"),
    "avg_wait": ("平均等待", "Average wait"),
    "callbacks_pending": ("待回拨", "Callbacks pending"),
    "callback_completion": ("回拨完成率", "Callback completion"),
    "time_to_call_back": ("回拨用时（中位）", "Time to call back (median)"),
    "visit_reach": ("回访接通率", "Return-visit reach rate"),
    "hourly": ("分时段话务量", "Calls by hour"),
    "nobody_waiting": ("无排队", "Nobody waiting"),
    "no_seats": ("无坐席签入", "No seat logged in"),
    "seconds": ("{n} 秒", "{n} s"),
    "inbox": ("待办工单", "Inbox"),
    "inbox_empty": ("暂无待办工单", "Nothing to do"),
    "case_number": ("工单编号", "Case number"),
    "deadline": ("办理时限", "Deadline"),
    "time_left": ("剩余时间", "Time left"),
    "assisting": ("协办", "Assisting"),
    "supervised": ("督办", "Supervised"),
    "overdue": ("已超时", "Overdue"),
    "sign_for": ("签收", "Sign for"),
    "on_site": ("已到场", "On site"),
    "progress_note": ("办理进展", "Progress note"),
    "add_note": ("添加进展", "Add note"),
    "reply": ("答复市民", "Reply to the citizen"),
    "resolve": ("办结", "Resolve"),
    "return_reason": ("退单理由", "Reason for returning"),
    "return_case": ("退单", "Return dispatch"),
    "extension_days": ("延期（工作日）", "Extension (working days)"),
    "ask_extension": ("申请延期", "Ask for extension"),
    "trail": ("办理记录", "Trail"),
    "supervision": ("督查督办", "Supervision"),
    "overdue_list": ("超时工单", "Overdue cases"),
    "returned_list": ("退单待审", "Returns to review"),
    "extension_list": ("延期待批", "Extensions to decide"),
    "needs_dispatch": ("待派单", "To dispatch"),
    "redispatch": ("改派", "Re-dispatch"),
    "uphold": ("维持原派", "Uphold"),
    "approve": ("同意", "Approve"),
    "refuse": ("不同意", "Refuse"),
    "lead_unit": ("主办单位", "Lead unit"),
    "by_catalogue": ("按派单目录", "By the dispatch catalogue"),
    "assisting_units": ("协办单位", "Assisting units"),
    "dispatch": ("派单", "Dispatch"),
    "supervise": ("督办", "Supervise"),
    "note": ("说明", "Note"),
    "unit": ("单位", "Unit"),
    "rankings": ("部门考核排名", "Unit rankings"),
    "merge": ("并单", "Merge"),
    "merge_into": ("并入工单编号", "into case number"),
    "merged_into": ("已并入工单 {number}", "Merged into case {number}"),
    "catalogue": ("派单目录", "Dispatch catalogue"),
    "limit_days": ("办理时限（工作日）", "Limit (working days)"),
    "save": ("保存", "Save"),
    "received_n": ("受理量", "Received"),
    "signed_in_time": ("按时签收率", "Signed for in time"),
    "resolved_in_time": ("按时办结率", "Resolved in time"),
    "returned_n": ("退单量", "Returned"),
    "overdue_n": ("超时量", "Overdue"),
    "overdue_people": ("超时责任人", "Late, by person"),
    "person": ("责任人", "Person"),
    "not_due_yet": ("尚未到期", "Not due yet"),
    "rankings_rule": (
        "按时率只计已过时限或已签收、已办结的派单；退单和超时记在退单、超时的单位和责任人名下。",
        "On-time rates count only dispatches whose limit has passed or that were signed for or"
        " resolved; returns and lateness are charged to the unit and person that returned the"
        " case or were late.",
    ),
    "satisfaction": ("满意率", "Satisfaction"),
    "export_csv": ("导出 CSV", "Export CSV"),
    "period": ("统计期间", "Period"),
    "lookup": ("工单查询", "Case lookup"),
    "lookup_hint": (
        "请输入工单编号和来电号码",
        "Enter the case number and the phone number you called from",
    ),
    "lookup_none": ("未找到与该号码对应的工单", "No case with that number for that phone"),
    "lookup_slow": ("查询过于频繁，请稍后再试", "Too many lookups; please try again in a minute"),
    "look_up": ("查询", "Look up"),
    "phone": ("电话号码", "Phone number"),
    "progress": ("办理进度", "Progress"),
    "status_returned": ("退单待审", "Returned"),
    "status_received": ("已受理", "Received"),
    "status_dispatched": ("已派单", "Dispatched"),
    "status_accepted": ("已签收", "Accepted"),
    "status_in_progress": ("处理中", "In progress"),
    "status_resolved": ("已办结", "Resolved"),
    "status_reopened": ("已重办", "Reopened"),
    "status_closed": ("已归档", "Closed"),
    "yes": ("是", "yes"),
    "error": ("错误", "Error"),
    "allowed": ("可选值", "Allowed"),
    "field_category_code": ("诉求类别", "Category"),
    "field_district_code": ("区", "District"),
    "field_urgency": ("紧急程度", "Urgency"),
    "field_description": ("诉求内容", "Description"),
    "field_address": ("地址", "Address"),
    "field_caller_name": ("姓名", "Name"),
    "field_department_code": ("主办单位", "Lead unit"),
    # Roles, as people call them.
    "role_operator": ("话务员", "Operator"),
    "role_supervisor": ("班长", "Supervisor"),
    "role_department": ("承办单位", "Department"),
    "role_admin": ("管理员", "Administrator"),
    "role_grid": ("网格员", "Grid worker"),
    "role_leader": ("值班领导", "Leader on duty"),
    "role_system": ("系统", "System"),
    # Seat-state reasons the queue writes (queueing/lua/): free text, normalised to
    # reason_<words_with_underscores>; anything else reads as 其他.
    "reason_paused": ("小休", "Paused"),
    "reason_login": ("签入", "Logged in"),
    "reason_logout": ("签出", "Logged out"),
    "reason_forced_logout": ("班长强制签出", "Logged out by a supervisor"),
    "reason_heartbeat_lost": ("连接中断，系统签出", "Connection lost"),
    "reason_no_answer": ("振铃未接", "Rang, no answer"),
    "reason_ring_no_answer": ("振铃未接", "Rang, no answer"),
    "reason_timeout": ("振铃超时", "Ring timed out"),
    "reason_busy": ("分机忙", "Phone busy"),
    "reason_failed": ("呼叫失败", "Call failed"),
    "reason_congestion": ("线路拥塞", "Congestion"),
    "reason_chanunavail": ("分机不可用", "Phone unavailable"),
    "reason_unknown": ("其他", "Other"),
    "reason_answered_elsewhere": ("来电已由其他坐席接听", "Answered by another seat"),
    "reason_answered_another_call": ("已接听其他来电", "Answered another call"),
    "reason_caller_hung_up": ("来电人挂机", "Caller hung up"),
    "reason_caller_left_for_a_callback": ("来电人改为回拨", "Caller chose a callback"),
    "reason_offer_not_taken_up": ("来电未被接起", "Offer not taken up"),
    "reason_wrap_up_ended": ("话后处理结束", "Wrap-up ended"),
    "reason_unstaffed": ("无坐席", "No seat staffed"),
    "reason_callback": ("回拨", "Callback"),
    # Durations.
    "dur_days": ("{n}天", "{n} d"),
    "dur_hours": ("{n}小时", "{n} h"),
    "dur_minutes": ("{n}分", "{n} min"),
    "dur_seconds": ("{n}秒", "{n} s"),
    # The case trail: what happened (the event's kind) and its details.
    "ev_create": ("受理", "Received"),
    "ev_received": ("退回受理", "Sent back to intake"),
    "ev_dispatched": ("派单", "Dispatched"),
    "ev_accepted": ("签收", "Signed for"),
    "ev_in_progress": ("开始办理", "In progress"),
    "ev_returned": ("退单", "Returned"),
    "ev_resolved": ("办结", "Resolved"),
    "ev_resolved_on_phone": ("直接办结", "Resolved on the phone"),
    "ev_reopened": ("回访不满意，重新办理", "Reopened: the citizen is not satisfied"),
    "ev_closed": ("归档", "Closed"),
    "ev_urged": ("催办（重复来电）", "Urged by a repeat call"),
    "ev_merged": ("并单", "Merged"),
    "ev_merged_in": ("并入重复工单", "A repeat case merged in"),
    "ev_form": ("修改工单", "Case edited"),
    "ev_on_site": ("已到场", "On site"),
    "ev_note": ("办理进展", "Progress note"),
    "ev_extension_asked": ("申请延期", "Extension asked"),
    "ev_extension_approved": ("同意延期", "Extension approved"),
    "ev_extension_refused": ("不同意延期", "Extension refused"),
    "ev_supervised": ("督办", "Supervised"),
    "ev_reminder": ("时限提醒", "Deadline reminder"),
    "ev_overdue": ("超时", "Overdue"),
    "ev_needs_dispatch": ("待人工派单", "Needs a dispatcher"),
    "ev_other": ("其他记录", "Other"),
    "ev_to_unit": ("派往 {unit}", "to {unit}"),
    "ev_assisted_by": ("协办：{units}", "assisted by {units}"),
    "ev_days": ("{n} 个工作日", "{n} working days"),
    "ev_merged_into": ("并入工单 {number}", "merged into case {number}"),
    "ev_due": ("截止 {at}", "due {at}"),
    "ev_late": ("{kind}已超时", "{kind} overdue"),
    "response_30": ("30分钟响应超时", "30-min response late"),
    "ev_kind_response": ("响应时限", "response limit"),
    "ev_kind_handling": ("办理时限", "handling limit"),
    "ev_limit_used": ("{kind}已用 80%", "80% of the {kind} used"),
    "ev_changed": ("修改了：{fields}", "changed: {fields}"),
    "ev_visit_satisfied": ("回访满意", "Return visit: satisfied"),
    "ev_visit_no_response": ("回访无应答", "Return visit: no response"),
    "ev_visit_unreachable": ("回访未接通", "Return visit: unreachable"),
    "actor_clock": ("系统计时", "Clock"),
    "actor_survey": ("回访机器人", "Return-visit bot"),
    "actor_system": ("系统", "System"),
    "actor_api-token": ("接口", "API"),
    "actor_anonymous": ("匿名", "Anonymous"),
    "actor_seat": ("坐席 {seat}", "Seat {seat}"),
    "when": ("时间", "When"),
    "who": ("操作人", "Who"),
    "what": ("事项", "What"),
    "details": ("说明", "Details"),
    # Error pages and messages.
    "http_400": ("请求有误", "Bad request"),
    "http_400_text": (
        "提交的内容有误，请返回检查后重试。",
        "Something in the request was wrong; go back and try again.",
    ),
    "http_400_csrf": (
        "页面已过期，请刷新页面后再操作。",
        "This page has expired; reload it and try again.",
    ),
    "http_403": ("无权访问", "Forbidden"),
    "http_403_text": (
        "您没有权限打开此页面或执行此操作。",
        "You may not open this page or do this.",
    ),
    "http_404": ("页面不存在", "Not found"),
    "http_404_text": (
        "找不到您要的页面或工单，请检查地址或编号。",
        "The page or case you asked for does not exist.",
    ),
    "http_405": ("不支持的操作", "Method not allowed"),
    "http_405_text": ("此页面不支持该操作。", "This page does not take that request."),
    "http_409": ("操作未能完成", "Conflict"),
    "http_409_text": (
        "当前状态不允许此操作，请刷新后重试。",
        "The current state does not allow this; reload and try again.",
    ),
    "http_422": ("内容未通过校验", "Unprocessable"),
    "http_422_text": (
        "提交的内容未通过校验，请修改后重试。",
        "What you sent could not be accepted; correct it and try again.",
    ),
    "http_429": ("操作过于频繁", "Too many requests"),
    "http_429_text": ("请稍后再试。", "Please try again in a minute."),
    "http_500": ("系统错误", "Server error"),
    "http_500_text": (
        "系统出现错误，已记录。请稍后重试，或联系管理员。",
        "Something went wrong on our side and was logged. Try again, or call an administrator.",
    ),
    "http_other": ("请求未能完成", "The request failed"),
    "back_home": ("返回首页", "Back to the start"),
    # Messages for the JSON API's error slugs, in a signed-in browser session.
    "err_not-logged-in": ("坐席未签入", "The seat is not logged in"),
    "err_seat-busy": ("坐席正在通话", "The seat is on a call"),
    "err_seat-taken": ("该坐席正由他人使用", "The seat is in use by someone else"),
    "err_no-such-call": ("找不到该通话", "No such call"),
    "err_not-offered-to-seat": ("该来电未分配给此坐席", "The call was not offered to this seat"),
    "err_not-offered": ("该来电未在振铃", "The call is not ringing"),
    "err_call-ended": ("通话已结束", "The call has ended"),
    "err_connected-elsewhere": ("来电已由其他坐席接听", "Another seat answered the call"),
    "err_not-connected": ("通话尚未接通", "The call is not connected"),
    "err_not-waiting": ("来电不在排队中", "The call is not waiting"),
    "err_not-in-wrap-up": ("坐席不在话后处理中", "The seat is not in wrap-up"),
    "err_unknown-skill": ("未知语种", "Unknown language skill"),
    "err_unknown-priority": ("未知优先级", "Unknown priority"),
    "err_bad-argument": ("输入有误", "Invalid input"),
    "err_bad-field": ("输入有误", "Invalid field"),
    "err_bad-json": ("请求格式有误", "Malformed JSON"),
    "err_bad-token": ("请先登录", "Sign in first"),
    "err_csrf": ("页面已过期，请刷新页面后再操作", "This page has expired; reload it"),
    "err_forbidden-role": ("您的角色不能执行此操作", "Your role cannot do this"),
    "err_forbidden": ("您无权执行此操作", "You may not do this"),
    "err_invalid-form": ("工单内容有误", "The case form has errors"),
    "err_not-found": ("找不到该资源", "Not found"),
    "err_method-not-allowed": ("不支持的操作", "Method not allowed"),
    # The dispatch catalogue.
    "catalogue_days_range": (
        "办理时限须为 1 至 60 个工作日",
        "The handling limit is 1 to 60 working days",
    ),
    "catalogue_no_unit": ("没有该承办单位：{unit}", "No such unit: {unit}"),
    # Confirmations before destructive actions.
    "confirm_force_logout": ("确定将坐席 {seat} 强制签出吗？", "Log seat {seat} out?"),
    "confirm_end_wrapup": ("确定结束坐席 {seat} 的话后处理吗？", "End the wrap-up of seat {seat}?"),
    "confirm_redispatch": (
        "确定将工单 {number} 改派给所选单位吗？",
        "Re-dispatch case {number} to the chosen unit?",
    ),
    "confirm_uphold": (
        "确定维持原派，将工单 {number} 退回原单位吗？",
        "Uphold: send case {number} back to the same unit?",
    ),
    # the operator's desk (calls.desk): seats that changed under them, calls that ended
    "connection_lost": (
        "与系统的连接已中断，正在重试……在恢复之前，来电状态可能不准确。",
        "Connection to the system lost; retrying. Call states may be out of date until it is back.",
    ),
    "log_in_again": ("请重新签入。", "Please log in again."),
    "session_expired": (
        "登录已过期，请重新登录。",
        "Your session has expired; please sign in again.",
    ),
    "outcome_waiting": ("排队中", "Waiting"),
    "outcome_ringing": ("振铃中", "Ringing"),
    "outcome_on_call": ("通话中", "On the call"),
    "outcome_talked": ("通话已结束", "The call has ended"),
    "outcome_missed": ("未接通：来电人已挂机", "Not connected: the caller hung up"),
    "call_missed_no_case": (
        "该来电未接通，无需建单。",
        "This call was never connected; no case is needed.",
    ),
    "not_in_list": ("不在可选范围内", "is not one of the choices"),
    "category_hint": ("输入中文或拼音首字母，如 停水 / ts", "Type Chinese or pinyin initials"),
    "suggested_units": ("建议承办单位", "Suggested units"),
    "all_units": ("全部单位", "All units"),
    "reason_signed_out": ("已退出登录", "Signed out"),
}


def translate(key: str, lang: str = "zh", **values: object) -> str:
    pair = TEXT.get(key)
    if pair is None:
        if key.startswith("reason_"):  # built from a free-text reason: never show a key
            return reason_name(key.removeprefix("reason_"), lang)
        return key.format(**values) if values else key
    text = pair[0] if lang == "zh" else pair[1]
    return text.format(**values) if values else text


def _pick(key: str, lang: str, fallback: str) -> str:
    return translate(key, lang) if key in TEXT else translate(fallback, lang)


def reason_name(reason: str | None, lang: str = "zh") -> str:
    """A seat-state reason as written by the queue ('no answer', 'heartbeat lost',
    'forced logout', a pause reason...) in words; an unknown one is 其他."""
    if not reason:
        return ""
    slug = "_".join(reason.strip().lower().replace("-", " ").split())
    return _pick("reason_" + slug, lang, "reason_other")


def role_name(role: str | None, lang: str = "zh") -> str:
    return _pick(f"role_{role}", lang, "role_system") if role else ""


def status_name(status: str | None, lang: str = "zh") -> str:
    return _pick(f"status_{status}", lang, "ev_other") if status else ""


def duration(seconds: float | timedelta | None, lang: str = "zh") -> str:
    """2天3小时, 3小时20分, 4分20秒, 45秒 (en: 2 d 3 h, 4 min 20 s): the two largest
    units, a zero second unit left out; "—" for no value."""
    if seconds is None:
        return "—"
    total = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
    sign = "−" if total < 0 else ""
    s = int(round(abs(total)))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [("dur_days", days), ("dur_hours", hours), ("dur_minutes", minutes)]
    units.append(("dur_seconds", secs))
    first = next((i for i, (_, n) in enumerate(units) if n), len(units) - 1)
    parts = [units[first]]
    if first + 1 < len(units) and units[first + 1][1]:
        parts.append(units[first + 1])
    joiner = "" if lang == "zh" else " "
    return sign + joiner.join(translate(key, lang, n=n) for key, n in parts)

"""Reference data: Haikou's districts, city departments, case categories with their
default responsible unit (the dispatch knowledge base), and merged legacy hotlines.
Seeding is idempotent: rows are added by code when missing, never overwritten, so
administrators' edits survive a re-run."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.models import Category, Department, District, LegacyHotline

DISTRICTS = [
    ("xiuying", "秀英区"),
    ("longhua", "龙华区"),
    ("qiongshan", "琼山区"),
    ("meilan", "美兰区"),
]

DEPARTMENTS = [
    ("urban-management", "市综合行政执法局（城管）"),
    ("housing", "市住房和城乡建设局"),
    ("natural-resources", "市自然资源和规划局"),
    ("ecology", "市生态环境局"),
    ("transport", "市交通运输局"),
    ("traffic-police", "市公安局交通警察支队"),
    ("public-security", "市公安局"),
    ("market-regulation", "市市场监督管理局"),
    ("human-resources", "市人力资源和社会保障局"),
    ("medical-insurance", "市医疗保障局"),
    ("health", "市卫生健康委员会"),
    ("education", "市教育局"),
    ("civil-affairs", "市民政局"),
    ("water-affairs", "市水务局"),
    ("power-supply", "海南电网海口供电局"),
    ("water-supply", "海口市供水公司"),
    ("gas", "海口市燃气公司"),
    ("landscaping-sanitation", "市园林和环境卫生管理局"),
    ("tourism-culture", "市旅游和文化广电体育局"),
    ("commerce", "市商务局"),
    ("agriculture", "市农业农村局"),
    ("emergency", "市应急管理局"),
    ("fire-rescue", "市消防救援支队"),
    ("tax", "国家税务总局海口市税务局"),
    ("housing-fund", "海南省住房公积金管理局海口分局"),
    ("justice", "市司法局"),
    ("veterans", "市退役军人事务局"),
    ("public-transit", "海口市公共交通集团"),
    ("port", "海口港航管理局"),
    ("airport", "海口美兰国际机场"),
    ("government-services", "市政务服务中心"),
    ("disabled-persons", "市残疾人联合会"),
    ("telecom", "市通信管理办公室"),
    ("letters-visits", "市信访局"),
    ("big-data", "市大数据管理局"),
    ("statistics", "市统计局"),
    ("finance", "市财政局"),
    ("development-reform", "市发展和改革委员会"),
    ("industry-information", "市工业和信息化局"),
    ("ocean-fisheries", "市海洋和渔业局"),
    ("forestry", "市林业局"),
    ("ethnic-religious", "市民族宗教事务局"),
]

# The dispatch catalogue's usual handling limits, in working days: consultations 3,
# complaints and requests 13.
CONSULTATION_DAYS, DEFAULT_DAYS = 3, 13


def handling_days(name: str) -> int:
    return CONSULTATION_DAYS if "咨询" in name else DEFAULT_DAYS


# (code, name, default department code or None for "the district", urgent)
CATEGORIES = [
    ("street-vending", "占道经营、流动摊贩", "urban-management", False),
    ("illegal-construction", "违章搭建", "urban-management", False),
    ("construction-noise", "建筑施工噪音扰民", "urban-management", False),
    ("outdoor-ads", "户外广告招牌", "urban-management", False),
    ("muck-trucks", "渣土车撒漏", "urban-management", False),
    ("property-management", "物业服务纠纷", "housing", False),
    ("housing-quality", "房屋质量问题", "housing", False),
    ("old-estate-renovation", "老旧小区改造", "housing", False),
    ("property-registration", "不动产登记", "natural-resources", False),
    ("illegal-land-use", "违法占地", "natural-resources", False),
    ("air-pollution", "空气污染", "ecology", False),
    ("industrial-wastewater", "工业废水排放", "ecology", True),
    ("restaurant-fumes", "餐饮油烟", "ecology", False),
    ("taxi-complaint", "出租车拒载、绕路", "transport", False),
    ("ride-hailing", "网约车服务投诉", "transport", False),
    ("bus-service", "公交服务与线路", "public-transit", False),
    ("traffic-lights", "交通信号灯故障", "traffic-police", True),
    ("illegal-parking", "违章停车", "traffic-police", False),
    ("traffic-congestion", "交通拥堵", "traffic-police", False),
    ("household-registration", "户籍、身份证办理", "public-security", False),
    ("public-order", "治安隐患", "public-security", True),
    ("food-safety", "食品安全", "market-regulation", True),
    ("consumer-dispute", "消费纠纷", "market-regulation", False),
    ("price-complaint", "价格投诉", "market-regulation", False),
    ("elevator-trapped", "电梯困人", "market-regulation", True),
    ("prepaid-card-refund", "预付卡退费", "commerce", False),
    ("unpaid-wages", "拖欠工资", "human-resources", True),
    ("social-insurance", "社保缴纳与待遇", "human-resources", False),
    ("labour-contract", "劳动合同纠纷", "human-resources", False),
    ("employment-subsidy", "就业创业补贴", "human-resources", False),
    ("medical-insurance-claims", "医保报销", "medical-insurance", False),
    ("medical-service", "医疗服务投诉", "health", False),
    ("vaccination", "疫苗接种", "health", False),
    ("school-admission", "入学咨询", "education", False),
    ("off-campus-tutoring", "校外培训", "education", False),
    ("school-fees", "学校收费", "education", False),
    ("minimum-living-allowance", "低保申请", "civil-affairs", False),
    ("elderly-care", "养老服务", "civil-affairs", False),
    ("marriage-registration", "婚姻登记", "civil-affairs", False),
    ("funeral-services", "殡葬服务", "civil-affairs", False),
    ("waterlogging", "道路积水、内涝", "water-affairs", True),
    ("drain-blockage", "排水管道堵塞", "water-affairs", False),
    ("river-pollution", "河道污染", "water-affairs", False),
    ("power-outage", "停电", "power-supply", True),
    ("electricity-billing", "电费与用电报装", "power-supply", False),
    ("power-hazard", "电力设施安全隐患", "power-supply", True),
    ("water-outage", "停水", "water-supply", True),
    ("water-quality", "自来水水质", "water-supply", True),
    ("gas-leak", "燃气泄漏", "gas", True),
    ("gas-service", "燃气开户与收费", "gas", False),
    ("fallen-trees", "树木倒伏", "landscaping-sanitation", True),
    ("garbage-collection", "垃圾清运", "landscaping-sanitation", False),
    ("public-toilets", "公厕管理", "landscaping-sanitation", False),
    ("tourism-complaint", "旅游投诉", "tourism-culture", False),
    ("work-safety", "安全生产隐患", "emergency", True),
    ("fire-lanes", "消防通道堵塞", "fire-rescue", True),
    ("tax-questions", "税费咨询", "tax", False),
    ("housing-fund", "公积金提取与贷款", "housing-fund", False),
    ("legal-aid", "法律援助", "justice", False),
    ("veterans-benefits", "退役军人优待", "veterans", False),
    ("disability-benefits", "残疾人补贴", "disabled-persons", False),
    ("telecom-service", "通信服务投诉", "telecom", False),
    ("online-government-services", "政务服务办事", "government-services", False),
    ("port-stranding", "港口滞留与过海", "port", True),
    ("flight-service", "机场服务", "airport", False),
    ("community-affairs", "社区事务", None, False),
    ("neighbour-disputes", "邻里纠纷", None, False),
    ("street-lights", "路灯不亮", None, False),
]

# Numbers that were merged into 12345 (dialed number -> name, category, department).
LEGACY_HOTLINES = [
    ("12345", "12345市民服务热线", None, None),
    ("95598", "供电服务热线（原供电投诉电话）", "power-outage", "power-supply"),
    ("12315", "消费者投诉热线", "consumer-dispute", "market-regulation"),
    ("12319", "城建服务热线", "drain-blockage", "housing"),
    ("12369", "环保举报热线", "air-pollution", "ecology"),
    ("12333", "人社服务热线", "social-insurance", "human-resources"),
    ("12328", "交通运输服务热线", "taxi-complaint", "transport"),
    ("96166", "供水服务热线", "water-outage", "water-supply"),
    ("12329", "住房公积金热线", "housing-fund", "housing-fund"),
]


def seed(session: Session) -> dict[str, int]:
    """Add missing reference rows; returns how many of each were added (and of
    knowledge base articles, under "articles", when the empty base was seeded)."""
    added = {"districts": 0, "departments": 0, "categories": 0, "hotlines": 0}
    districts = {d.code: d for d in session.scalars(select(District))}
    for code, name in DISTRICTS:
        if code not in districts:
            districts[code] = District(code=code, name=name)
            session.add(districts[code])
            added["districts"] += 1
    session.flush()
    departments = {d.code: d for d in session.scalars(select(Department))}
    for code, name in DEPARTMENTS:
        if code not in departments:
            departments[code] = Department(code=code, name=name, kind="department")
            session.add(departments[code])
            added["departments"] += 1
    for code, name in DISTRICTS:
        dept_code = f"district-{code}"
        if dept_code not in departments:
            departments[dept_code] = Department(
                code=dept_code,
                name=f"{name}人民政府",
                kind="district",
                district_id=districts[code].id,
            )
            session.add(departments[dept_code])
            added["departments"] += 1
    session.flush()
    categories = {c.code: c for c in session.scalars(select(Category))}
    for code, name, dept, urgent in CATEGORIES:
        if code not in categories:
            categories[code] = Category(
                code=code,
                name=name,
                urgent=urgent,
                handling_days=handling_days(name),
                department_id=departments[dept].id if dept else None,
            )
            session.add(categories[code])
            added["categories"] += 1
    session.flush()
    hotlines = {h.dialed for h in session.scalars(select(LegacyHotline))}
    for dialed, name, category, dept in LEGACY_HOTLINES:
        if dialed not in hotlines:
            session.add(
                LegacyHotline(
                    dialed=dialed,
                    name=name,
                    category_id=categories[category].id if category else None,
                    department_id=departments[dept].id if dept else None,
                )
            )
            added["hotlines"] += 1
    session.flush()
    from cases.grid import seed_grid

    added.update(seed_grid(session))  # streets, communities, grids, the address table
    from cases.knowledge import seed_articles  # jieba loads only where articles are seeded

    articles = seed_articles(session)
    if articles:
        added["articles"] = articles
    return added

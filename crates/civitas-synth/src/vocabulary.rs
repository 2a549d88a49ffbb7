//! The words the generator builds catalog entries from: what Nanjing's departments publish, the
//! information items of each topic, and the phrases of names and summaries.
//!
//! Topic names and items follow the published catalogs of Chinese municipal data-sharing
//! platforms in shape (a subject, what is recorded about it, a suffix such as 信息 or 记录); the
//! entries themselves are written for this generator.

use civitas_core::catalog::{DataType, Sensitivity};

/// One information item a topic may carry.
#[derive(Debug)]
pub(crate) struct ItemSpec {
    pub code: &'static str,
    pub name: &'static str,
    pub data_type: DataType,
    pub sensitivity: Sensitivity,
}

macro_rules! items {
    ($(($code:literal, $name:literal, $data_type:ident, $sensitivity:ident)),* $(,)?) => {
        &[$(ItemSpec {
            code: $code,
            name: $name,
            data_type: DataType::$data_type,
            sensitivity: Sensitivity::$sensitivity,
        }),*]
    };
}

/// What the records of a topic are about; it decides the common items and the name suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    Person,
    Enterprise,
    Place,
    Event,
    Statistic,
}

impl Subject {
    /// Items every topic of the subject may carry; the first `core_count` always appear.
    pub(crate) fn items(self) -> (&'static [ItemSpec], usize) {
        match self {
            Subject::Person => (
                items![
                    ("id_number", "公民身份号码", String, Personal),
                    ("name", "姓名", String, Personal),
                    ("gender", "性别", String, Internal),
                    ("birth_date", "出生日期", Date, Personal),
                    ("mobile", "联系电话", String, Personal),
                    ("address", "住址", String, Personal),
                    ("ethnicity", "民族", String, Sensitive),
                ],
                2,
            ),
            Subject::Enterprise => (
                items![
                    ("uscc", "统一社会信用代码", String, Public),
                    ("enterprise_name", "企业名称", String, Public),
                    ("legal_representative", "法定代表人", String, Personal),
                    ("registered_address", "注册地址", String, Public),
                    ("registered_capital", "注册资本", Decimal, Public),
                    ("establishment_date", "成立日期", Date, Public),
                    ("contact_phone", "联系电话", String, Personal),
                ],
                2,
            ),
            Subject::Place => (
                items![
                    ("facility_code", "设施编码", String, Public),
                    ("facility_name", "设施名称", String, Public),
                    ("address", "地址", String, Public),
                    ("district_code", "行政区划代码", String, Public),
                    ("longitude", "经度", Decimal, Internal),
                    ("latitude", "纬度", Decimal, Internal),
                    ("manager_unit", "管理单位", String, Public),
                ],
                2,
            ),
            Subject::Event => (
                items![
                    ("record_no", "记录编号", String, Internal),
                    ("occurred_at", "发生时间", Datetime, Internal),
                    ("location", "发生地点", String, Internal),
                    ("handler", "经办人", String, Personal),
                    ("handling_status", "办理状态", String, Internal),
                    ("district_code", "行政区划代码", String, Public),
                ],
                2,
            ),
            Subject::Statistic => (
                items![
                    ("stat_period", "统计期", String, Public),
                    ("district_code", "行政区划代码", String, Public),
                    ("indicator_name", "指标名称", String, Public),
                    ("indicator_value", "指标值", Decimal, Public),
                    ("unit", "计量单位", String, Public),
                ],
                3,
            ),
        }
    }

    /// Name suffixes (Chinese, English) that fit the subject.
    pub(crate) fn suffixes(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Subject::Person => &[
                ("信息", "Information"),
                ("明细信息", "Details"),
                ("数据", "Data"),
                ("名单", "List"),
                ("登记信息", "Register"),
                ("基本信息", "Basic Information"),
            ],
            Subject::Enterprise => &[
                ("信息", "Information"),
                ("名录", "Directory"),
                ("数据", "Data"),
                ("明细信息", "Details"),
                ("公示信息", "Public Notices"),
            ],
            Subject::Place => &[
                ("信息", "Information"),
                ("分布信息", "Locations"),
                ("目录", "Catalogue"),
                ("数据", "Data"),
                ("基本信息", "Basic Information"),
            ],
            Subject::Event => &[
                ("记录", "Records"),
                ("信息", "Information"),
                ("台账", "Ledger"),
                ("办理信息", "Case Handling"),
                ("明细", "Details"),
            ],
            Subject::Statistic => &[
                ("统计", "Statistics"),
                ("汇总表", "Summary Tables"),
                ("统计数据", "Statistical Data"),
                ("监测数据", "Monitoring Data"),
                ("年报", "Annual Report"),
            ],
        }
    }

    /// How a summary names the records: 人员, 企业 …
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Subject::Person => "人员",
            Subject::Enterprise => "市场主体",
            Subject::Place => "设施和场所",
            Subject::Event => "事项",
            Subject::Statistic => "指标",
        }
    }
}

/// One kind of record a department keeps.
#[derive(Debug)]
pub(crate) struct Topic {
    pub zh: &'static str,
    pub en: &'static str,
    pub subject: Subject,
    pub items: &'static [ItemSpec],
    pub tags: &'static [&'static str],
    /// Base and theme classifications of the catalog guide that fit the topic.
    pub classifications: &'static [&'static str],
}

/// A department as the generator knows it: how to recognize its providers by name, its systems,
/// and what it publishes.
#[derive(Debug)]
pub(crate) struct Department {
    /// Any of these in a provider's Chinese name makes the provider this department.
    pub keywords: &'static [&'static str],
    pub tag: &'static str,
    /// The system code interfaces of this department are served from.
    pub system: &'static str,
    /// How much of the catalog the department publishes, relative to others.
    pub weight: u32,
    pub topics: &'static [Topic],
}

macro_rules! topic {
    ($zh:literal, $en:literal, $subject:ident, [$($class:literal),*], [$($tag:literal),*], $items:expr) => {
        Topic {
            zh: $zh,
            en: $en,
            subject: Subject::$subject,
            items: $items,
            tags: &[$($tag),*],
            classifications: &[$($class),*],
        }
    };
}

/// Departments in matching order: a provider takes the first department one of whose keywords its
/// name contains, so more specific keywords come first.
pub(crate) static DEPARTMENTS: &[Department] = &[
    // First: 人民政府 contains 民政, and a district government is not a civil affairs bureau.
    Department {
        keywords: &["人民政府"],
        tag: "基层治理",
        system: "grid-governance",
        weight: 5,
        topics: &[
            topic!(
                "网格化社会治理事件",
                "Grid-based Community Governance Incidents",
                Event,
                ["T10"],
                ["网格化", "基层治理"],
                items![
                    ("grid_code", "网格编码", String, Internal),
                    ("incident_type", "事件类型", String, Internal),
                    ("grid_worker", "网格员", String, Personal),
                ]
            ),
            topic!(
                "社区基本信息",
                "Community Basic Information",
                Place,
                ["T10"],
                ["社区"],
                items![
                    ("community_code", "社区代码", String, Public),
                    ("households", "户数", Integer, Public),
                    ("population", "常住人口", Integer, Public),
                ]
            ),
            topic!(
                "政府信息公开申请",
                "Government Information Disclosure Requests",
                Event,
                ["T01"],
                ["政务公开"],
                items![
                    ("request_no", "申请编号", String, Internal),
                    ("reply_type", "答复类型", String, Internal),
                ]
            ),
            topic!(
                "重点项目建设进度",
                "Key Project Construction Progress",
                Statistic,
                ["T09"],
                ["重点项目"],
                items![
                    ("project_name", "项目名称", String, Public),
                    ("completion_rate", "形象进度", Decimal, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["公积金"],
        tag: "住房公积金",
        system: "housing-fund-core",
        weight: 14,
        topics: &[
            topic!(
                "住房公积金缴存",
                "Housing Provident Fund Deposit",
                Person,
                ["B01", "T03"],
                ["住房公积金", "缴存"],
                items![
                    ("account_no", "个人公积金账号", String, Sensitive),
                    ("employer_name", "单位名称", String, Public),
                    ("balance", "账户余额", Decimal, Sensitive),
                    ("monthly_deposit", "月缴存额", Decimal, Sensitive),
                    ("deposit_ratio", "缴存比例", Decimal, Internal),
                    ("last_deposit_month", "最近缴存月份", String, Internal),
                    ("account_status", "账户状态", String, Internal),
                ]
            ),
            topic!(
                "住房公积金贷款",
                "Housing Provident Fund Loan",
                Person,
                ["T03", "T09"],
                ["住房公积金", "贷款"],
                items![
                    ("loan_contract_no", "借款合同编号", String, Sensitive),
                    ("loan_amount", "贷款金额", Decimal, Sensitive),
                    ("loan_term_months", "贷款期限（月）", Integer, Internal),
                    ("repayment_status", "还款状态", String, Sensitive),
                    ("overdue_periods", "逾期期数", Integer, Sensitive),
                ]
            ),
            topic!(
                "住房公积金提取",
                "Housing Provident Fund Withdrawal",
                Person,
                ["T03"],
                ["住房公积金", "提取"],
                items![
                    ("account_no", "个人公积金账号", String, Sensitive),
                    ("withdrawal_reason", "提取原因", String, Internal),
                    ("withdrawal_amount", "提取金额", Decimal, Sensitive),
                    ("withdrawal_date", "提取日期", Date, Internal),
                ]
            ),
            topic!(
                "住房公积金缴存单位登记",
                "Housing Provident Fund Employer Registration",
                Enterprise,
                ["B02", "T03"],
                ["住房公积金", "缴存单位"],
                items![
                    ("unit_account_no", "单位公积金账号", String, Internal),
                    ("employee_count", "缴存职工人数", Integer, Public),
                    ("deposit_base_total", "缴存基数合计", Decimal, Internal),
                ]
            ),
        ],
    },
    Department {
        keywords: &["公安"],
        tag: "公安",
        system: "population-registry",
        weight: 12,
        topics: &[
            topic!(
                "户籍人口登记",
                "Household Registration",
                Person,
                ["B01", "T10"],
                ["户籍", "人口"],
                items![
                    ("household_no", "户号", String, Sensitive),
                    ("relationship_to_head", "与户主关系", String, Personal),
                    ("registered_residence", "户籍地址", String, Personal),
                    ("registration_date", "登记日期", Date, Internal),
                ]
            ),
            topic!(
                "居民身份证办理",
                "Resident Identity Card Issuance",
                Person,
                ["B01", "B05", "T01"],
                ["身份证", "证照"],
                items![
                    ("issuing_authority", "签发机关", String, Public),
                    ("valid_from", "有效期起始日期", Date, Internal),
                    ("valid_until", "有效期截止日期", Date, Internal),
                    ("application_type", "申领类型", String, Internal),
                ]
            ),
            topic!(
                "流动人口居住登记",
                "Floating Population Residence Registration",
                Person,
                ["B01", "T10"],
                ["流动人口", "居住证"],
                items![
                    ("residence_address", "居住地址", String, Personal),
                    ("residence_permit_no", "居住证编号", String, Sensitive),
                    ("arrival_date", "来本市日期", Date, Internal),
                    ("residence_reason", "居住事由", String, Internal),
                ]
            ),
            topic!(
                "机动车驾驶人",
                "Motor Vehicle Driver",
                Person,
                ["B05", "T05"],
                ["驾驶证", "交通"],
                items![
                    ("licence_no", "驾驶证号", String, Personal),
                    ("licence_class", "准驾车型", String, Internal),
                    ("first_issue_date", "初次领证日期", Date, Internal),
                    ("penalty_points", "累积记分", Integer, Sensitive),
                ]
            ),
            topic!(
                "道路交通违法处理",
                "Traffic Violation Handling",
                Event,
                ["T05", "T12"],
                ["交通违法", "交通"],
                items![
                    ("plate_no", "号牌号码", String, Sensitive),
                    ("violation_code", "违法代码", String, Internal),
                    ("fine_amount", "罚款金额", Decimal, Internal),
                    ("processing_authority", "处理机关", String, Public),
                ]
            ),
            topic!(
                "出入境证件办理",
                "Exit and Entry Document Issuance",
                Person,
                ["B05", "T01"],
                ["出入境", "证照"],
                items![
                    ("document_type", "证件类型", String, Internal),
                    ("document_no", "证件号码", String, Personal),
                    ("issue_date", "签发日期", Date, Internal),
                ]
            ),
        ],
    },
    Department {
        keywords: &["民政"],
        tag: "民政",
        system: "civil-affairs",
        weight: 10,
        topics: &[
            topic!(
                "婚姻登记",
                "Marriage Registration",
                Person,
                ["B01", "B05", "T01"],
                ["婚姻", "登记"],
                items![
                    ("certificate_no", "结婚证字号", String, Sensitive),
                    ("registration_date", "登记日期", Date, Internal),
                    ("spouse_name", "配偶姓名", String, Personal),
                    ("spouse_id_number", "配偶公民身份号码", String, Personal),
                    ("registration_office", "登记机关", String, Public),
                ]
            ),
            topic!(
                "最低生活保障",
                "Minimum Living Allowance",
                Person,
                ["T03"],
                ["低保", "社会救助"],
                items![
                    ("household_size", "家庭人口数", Integer, Internal),
                    ("allowance_amount", "保障金额", Decimal, Sensitive),
                    ("approval_date", "审批日期", Date, Internal),
                    ("assistance_status", "救助状态", String, Internal),
                ]
            ),
            topic!(
                "养老服务机构",
                "Elderly Care Institutions",
                Place,
                ["T01", "T03"],
                ["养老", "养老服务"],
                items![
                    ("bed_count", "床位数", Integer, Public),
                    ("resident_count", "在院老人数", Integer, Public),
                    ("operator_name", "运营单位", String, Public),
                    ("filing_no", "备案编号", String, Public),
                ]
            ),
            topic!(
                "居家养老服务补贴",
                "Home Care Subsidies for the Elderly",
                Person,
                ["T03"],
                ["养老", "补贴"],
                items![
                    ("care_level", "照护等级", String, Sensitive),
                    ("subsidy_amount", "补贴金额", Decimal, Sensitive),
                    ("service_provider", "服务机构", String, Public),
                ]
            ),
            topic!(
                "社会组织登记",
                "Social Organization Registration",
                Enterprise,
                ["B02", "T08"],
                ["社会组织"],
                items![
                    ("organization_type", "组织类型", String, Public),
                    ("business_supervisor", "业务主管单位", String, Public),
                    ("annual_inspection_result", "年检结论", String, Public),
                ]
            ),
            topic!(
                "困难残疾人生活补贴",
                "Living Subsidies for Disabled People in Need",
                Person,
                ["T03"],
                ["残疾人", "补贴"],
                items![
                    ("disability_certificate_no", "残疾人证号", String, Personal),
                    ("disability_level", "残疾等级", String, Sensitive),
                    ("subsidy_amount", "补贴金额", Decimal, Sensitive),
                ]
            ),
        ],
    },
    Department {
        keywords: &["人力资源和社会保障"],
        tag: "人社",
        system: "social-insurance",
        weight: 12,
        topics: &[
            topic!(
                "社会保险参保缴费",
                "Social Insurance Contributions",
                Person,
                ["B01", "T03"],
                ["社会保险", "社保", "参保"],
                items![
                    ("insurance_type", "险种类型", String, Internal),
                    ("contribution_base", "缴费基数", Decimal, Sensitive),
                    ("payment_month", "缴费月份", String, Internal),
                    ("employer_uscc", "参保单位统一社会信用代码", String, Public),
                    ("employer_name", "参保单位名称", String, Public),
                ]
            ),
            topic!(
                "就业登记",
                "Employment Registration",
                Person,
                ["T01", "T03"],
                ["就业"],
                items![
                    ("employer_uscc", "用人单位统一社会信用代码", String, Public),
                    ("employment_date", "就业日期", Date, Internal),
                    ("employment_form", "就业形式", String, Internal),
                ]
            ),
            topic!(
                "失业保险金发放",
                "Unemployment Insurance Benefit Payments",
                Person,
                ["T03"],
                ["失业保险", "社会保险"],
                items![
                    ("benefit_amount", "发放金额", Decimal, Sensitive),
                    ("benefit_months", "领取月数", Integer, Internal),
                    ("payment_date", "发放日期", Date, Internal),
                ]
            ),
            topic!(
                "职业技能等级证书",
                "Vocational Skill Level Certificates",
                Person,
                ["B05", "T01"],
                ["职业技能", "证照"],
                items![
                    ("certificate_no", "证书编号", String, Internal),
                    ("occupation", "职业（工种）", String, Public),
                    ("skill_level", "技能等级", String, Public),
                    ("issue_date", "发证日期", Date, Public),
                ]
            ),
            topic!(
                "劳动保障监察案件",
                "Labour Inspection Cases",
                Event,
                ["B04", "T08"],
                ["劳动监察", "欠薪"],
                items![
                    ("case_no", "案件编号", String, Internal),
                    ("employer_name", "用人单位名称", String, Public),
                    ("violation_type", "违法类型", String, Internal),
                    ("wages_recovered", "追回工资金额", Decimal, Internal),
                ]
            ),
            topic!(
                "养老保险待遇领取",
                "Pension Benefit Payments",
                Person,
                ["T03"],
                ["养老保险", "社会保险"],
                items![
                    ("pension_amount", "月养老金", Decimal, Sensitive),
                    ("retirement_date", "退休日期", Date, Internal),
                    ("qualification_status", "领取资格状态", String, Internal),
                ]
            ),
        ],
    },
    Department {
        keywords: &["规划和自然资源", "自然资源"],
        tag: "自然资源",
        system: "real-estate-registry",
        weight: 9,
        topics: &[
            topic!(
                "不动产登记",
                "Real Estate Registration",
                Person,
                ["B03", "B05", "T09"],
                ["不动产登记", "不动产"],
                items![
                    (
                        "property_certificate_no",
                        "不动产权证书号",
                        String,
                        Sensitive
                    ),
                    ("property_unit_no", "不动产单元号", String, Internal),
                    ("property_location", "坐落", String, Sensitive),
                    ("building_area", "建筑面积", Decimal, Internal),
                    ("right_type", "权利类型", String, Internal),
                    ("registration_date", "登记日期", Date, Internal),
                ]
            ),
            topic!(
                "国有建设用地供应",
                "State-owned Construction Land Supply",
                Place,
                ["B03", "T09"],
                ["土地供应", "国土空间"],
                items![
                    ("parcel_no", "宗地编号", String, Public),
                    ("land_use", "土地用途", String, Public),
                    ("land_area", "出让面积", Decimal, Public),
                    ("transfer_price", "成交价格", Decimal, Public),
                ]
            ),
            topic!(
                "建设工程规划许可",
                "Construction Project Planning Permits",
                Enterprise,
                ["B05", "T09"],
                ["规划许可", "城乡建设"],
                items![
                    ("permit_no", "许可证编号", String, Public),
                    ("project_name", "项目名称", String, Public),
                    ("building_area", "建设规模", Decimal, Public),
                    ("issue_date", "发证日期", Date, Public),
                ]
            ),
            topic!(
                "标准地名地址",
                "Standard Place Names and Addresses",
                Place,
                ["B03"],
                ["地名地址", "空间地理"],
                items![
                    ("address_code", "地址编码", String, Public),
                    ("standard_address", "标准地址", String, Public),
                    ("road_name", "道路名称", String, Public),
                ]
            ),
            topic!(
                "永久基本农田保护",
                "Permanent Basic Farmland Protection",
                Place,
                ["B03", "T11"],
                ["耕地保护"],
                items![
                    ("plot_no", "图斑编号", String, Public),
                    ("plot_area", "图斑面积", Decimal, Public),
                    ("protection_level", "保护等级", String, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["住房保障和房产", "住房和城乡建设"],
        tag: "住房",
        system: "housing-market",
        weight: 8,
        topics: &[
            topic!(
                "房屋租赁登记备案",
                "Housing Rental Registration",
                Person,
                ["T09", "T10"],
                ["房屋租赁", "住房"],
                items![
                    ("lease_contract_no", "租赁合同备案号", String, Internal),
                    ("house_address", "房屋地址", String, Personal),
                    ("monthly_rent", "月租金", Decimal, Sensitive),
                    ("lease_start", "租赁起始日期", Date, Internal),
                    ("lease_end", "租赁截止日期", Date, Internal),
                ]
            ),
            topic!(
                "商品房预售许可",
                "Commercial Housing Pre-sale Permits",
                Enterprise,
                ["B05", "T09"],
                ["预售许可", "房地产"],
                items![
                    ("permit_no", "预售许可证号", String, Public),
                    ("project_name", "项目名称", String, Public),
                    ("unit_count", "预售套数", Integer, Public),
                    ("presale_area", "预售面积", Decimal, Public),
                ]
            ),
            topic!(
                "保障性住房申请",
                "Affordable Housing Applications",
                Person,
                ["T03", "T09"],
                ["保障房", "住房保障"],
                items![
                    ("application_no", "申请编号", String, Internal),
                    ("household_income", "家庭年收入", Decimal, Sensitive),
                    (
                        "housing_area_per_capita",
                        "人均住房面积",
                        Decimal,
                        Sensitive
                    ),
                    ("review_result", "审核结果", String, Internal),
                ]
            ),
            topic!(
                "物业服务企业",
                "Property Management Companies",
                Enterprise,
                ["B02", "T10"],
                ["物业"],
                items![
                    ("managed_projects", "在管项目数", Integer, Public),
                    ("credit_score", "信用评分", Decimal, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["卫生健康"],
        tag: "卫生健康",
        system: "health-information",
        weight: 10,
        topics: &[
            topic!(
                "出生医学证明",
                "Medical Birth Certificates",
                Person,
                ["B01", "B05", "T02"],
                ["出生证明", "妇幼"],
                items![
                    ("certificate_no", "出生医学证明编号", String, Sensitive),
                    ("newborn_name", "新生儿姓名", String, Personal),
                    ("birth_time", "出生时间", Datetime, Personal),
                    ("birth_place", "出生地点", String, Internal),
                    ("mother_name", "母亲姓名", String, Personal),
                    ("mother_id_number", "母亲公民身份号码", String, Personal),
                ]
            ),
            topic!(
                "预防接种记录",
                "Vaccination Records",
                Person,
                ["T02"],
                ["疫苗接种", "免疫规划"],
                items![
                    ("vaccine_name", "疫苗名称", String, Internal),
                    ("dose_no", "剂次", Integer, Internal),
                    ("vaccination_date", "接种日期", Date, Internal),
                    ("vaccination_site", "接种单位", String, Public),
                ]
            ),
            topic!(
                "医疗机构执业许可",
                "Medical Institution Practice Licences",
                Enterprise,
                ["B05", "T02"],
                ["医疗机构", "许可"],
                items![
                    ("licence_no", "执业许可证登记号", String, Public),
                    ("institution_level", "医院等级", String, Public),
                    ("clinical_departments", "诊疗科目", String, Public),
                ]
            ),
            topic!(
                "医师执业注册",
                "Physician Practice Registration",
                Person,
                ["B05", "T02"],
                ["医师", "执业注册"],
                items![
                    (
                        "practice_certificate_no",
                        "医师执业证书编码",
                        String,
                        Internal
                    ),
                    ("practice_category", "执业类别", String, Public),
                    ("practice_institution", "执业机构", String, Public),
                ]
            ),
            topic!(
                "居民电子健康档案",
                "Electronic Health Records",
                Person,
                ["T02"],
                ["健康档案"],
                items![
                    ("record_no", "健康档案编号", String, Sensitive),
                    ("chronic_conditions", "慢性病情况", String, Sensitive),
                    ("family_doctor", "签约家庭医生", String, Internal),
                ]
            ),
        ],
    },
    Department {
        keywords: &["医疗保障"],
        tag: "医保",
        system: "medical-insurance",
        weight: 8,
        topics: &[
            topic!(
                "基本医疗保险参保",
                "Basic Medical Insurance Enrolment",
                Person,
                ["T02", "T03"],
                ["医保", "参保"],
                items![
                    ("insured_type", "参保类型", String, Internal),
                    ("enrolment_date", "参保日期", Date, Internal),
                    ("insured_status", "参保状态", String, Internal),
                ]
            ),
            topic!(
                "医疗费用结算",
                "Medical Expense Settlements",
                Event,
                ["T02"],
                ["医保结算"],
                items![
                    ("settlement_no", "结算编号", String, Internal),
                    ("hospital_name", "就诊医疗机构", String, Public),
                    ("total_cost", "医疗费总额", Decimal, Sensitive),
                    ("fund_paid", "统筹基金支付", Decimal, Sensitive),
                    ("self_paid", "个人自付", Decimal, Sensitive),
                ]
            ),
            topic!(
                "定点医药机构",
                "Designated Medical Institutions and Pharmacies",
                Place,
                ["T02"],
                ["定点医药机构", "医保"],
                items![
                    ("institution_code", "定点机构编码", String, Public),
                    ("institution_type", "机构类型", String, Public),
                    ("agreement_period", "协议期限", String, Public),
                ]
            ),
            topic!(
                "医保药品目录",
                "Medical Insurance Drug List",
                Statistic,
                ["T02", "T04"],
                ["药品目录", "医保"],
                items![
                    ("drug_code", "药品编码", String, Public),
                    ("drug_name", "药品名称", String, Public),
                    ("reimbursement_category", "报销类别", String, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["教育"],
        tag: "教育",
        system: "education-management",
        weight: 8,
        topics: &[
            topic!(
                "中小学学籍",
                "Primary and Secondary School Enrolment",
                Person,
                ["B01", "T01"],
                ["学籍", "教育"],
                items![
                    ("student_no", "学籍号", String, Sensitive),
                    ("school_name", "学校名称", String, Public),
                    ("grade", "年级", String, Internal),
                    ("enrolment_date", "入学日期", Date, Internal),
                ]
            ),
            topic!(
                "学校基本信息",
                "School Basic Information",
                Place,
                ["T01"],
                ["学校", "教育"],
                items![
                    ("school_code", "学校标识码", String, Public),
                    ("school_type", "办学类型", String, Public),
                    ("student_count", "在校生数", Integer, Public),
                    ("teacher_count", "专任教师数", Integer, Public),
                ]
            ),
            topic!(
                "教师资格认定",
                "Teacher Qualification Certification",
                Person,
                ["B05", "T01"],
                ["教师资格", "证照"],
                items![
                    ("certificate_no", "教师资格证书号码", String, Internal),
                    ("qualification_type", "资格种类", String, Public),
                    ("subject_taught", "任教学科", String, Public),
                ]
            ),
            topic!(
                "义务教育招生入学",
                "Compulsory Education Admissions",
                Person,
                ["T01"],
                ["招生", "入学"],
                items![
                    ("school_district", "施教区", String, Internal),
                    ("admission_school", "录取学校", String, Internal),
                    ("admission_type", "入学方式", String, Internal),
                ]
            ),
        ],
    },
    Department {
        keywords: &["市场监督管理"],
        tag: "市场监管",
        system: "market-regulation",
        weight: 13,
        topics: &[
            topic!(
                "企业登记注册",
                "Enterprise Registration",
                Enterprise,
                ["B02", "T08"],
                ["企业登记", "市场主体"],
                items![
                    ("enterprise_type", "企业类型", String, Public),
                    ("business_scope", "经营范围", String, Public),
                    ("registration_authority", "登记机关", String, Public),
                    ("operating_status", "登记状态", String, Public),
                ]
            ),
            topic!(
                "食品经营许可证",
                "Food Business Licences",
                Enterprise,
                ["B05", "T04"],
                ["食品安全", "许可证"],
                items![
                    ("licence_no", "许可证编号", String, Public),
                    ("business_category", "经营项目", String, Public),
                    ("valid_until", "有效期至", Date, Public),
                    ("business_premises", "经营场所", String, Public),
                ]
            ),
            topic!(
                "行政处罚",
                "Administrative Penalties",
                Enterprise,
                ["B04", "T08"],
                ["行政处罚", "信用"],
                items![
                    ("decision_no", "处罚决定书文号", String, Public),
                    ("violation_facts", "违法事实", String, Public),
                    ("penalty_type", "处罚类别", String, Public),
                    ("penalty_amount", "罚款金额", Decimal, Public),
                    ("decision_date", "处罚决定日期", Date, Public),
                ]
            ),
            topic!(
                "特种设备检验",
                "Special Equipment Inspections",
                Place,
                ["T05"],
                ["特种设备", "电梯"],
                items![
                    ("equipment_code", "设备代码", String, Public),
                    ("equipment_type", "设备类别", String, Public),
                    ("inspection_result", "检验结论", String, Public),
                    ("next_inspection_date", "下次检验日期", Date, Public),
                ]
            ),
            topic!(
                "经营异常名录",
                "Abnormal Business Operations List",
                Enterprise,
                ["B04", "T08"],
                ["经营异常", "信用"],
                items![
                    ("listing_reason", "列入原因", String, Public),
                    ("listing_date", "列入日期", Date, Public),
                    ("listing_authority", "作出决定机关", String, Public),
                ]
            ),
            topic!(
                "药品零售企业许可",
                "Drug Retail Licences",
                Enterprise,
                ["B05", "T04"],
                ["药品", "许可证"],
                items![
                    ("licence_no", "药品经营许可证编号", String, Public),
                    ("quality_manager", "质量负责人", String, Personal),
                    ("business_mode", "经营方式", String, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["税务"],
        tag: "税务",
        system: "tax-administration",
        weight: 8,
        topics: &[
            topic!(
                "纳税人登记",
                "Taxpayer Registration",
                Enterprise,
                ["B02"],
                ["纳税人", "税务"],
                items![
                    ("taxpayer_type", "纳税人类型", String, Internal),
                    ("tax_authority", "主管税务机关", String, Public),
                    ("registration_date", "税务登记日期", Date, Internal),
                ]
            ),
            topic!(
                "纳税信用等级评价",
                "Tax Credit Ratings",
                Enterprise,
                ["B04", "T08"],
                ["纳税信用", "信用"],
                items![
                    ("credit_level", "信用级别", String, Public),
                    ("rating_year", "评价年度", String, Public),
                ]
            ),
            topic!(
                "发票开具",
                "Invoice Issuance",
                Enterprise,
                ["T08"],
                ["发票"],
                items![
                    ("invoice_count", "开票份数", Integer, Internal),
                    ("invoice_amount", "开票金额", Decimal, Sensitive),
                    ("billing_month", "所属月份", String, Internal),
                ]
            ),
            topic!(
                "欠税公告",
                "Tax Arrears Notices",
                Enterprise,
                ["B04", "T08"],
                ["欠税", "信用"],
                items![
                    ("tax_type", "欠税税种", String, Public),
                    ("arrears_amount", "欠税余额", Decimal, Public),
                ]
            ),
            topic!(
                "个人所得税纳税",
                "Individual Income Tax Payments",
                Person,
                ["T03"],
                ["个人所得税", "税务"],
                items![
                    ("tax_period", "所属期", String, Internal),
                    ("taxable_income", "应纳税所得额", Decimal, Sensitive),
                    ("tax_paid", "已缴税额", Decimal, Sensitive),
                ]
            ),
        ],
    },
    Department {
        keywords: &["水务"],
        tag: "水务",
        system: "smart-water",
        weight: 6,
        topics: &[
            topic!(
                "河道水位监测",
                "River Water Level Monitoring",
                Place,
                ["T11", "T12"],
                ["防汛", "水位", "智慧水务"],
                items![
                    ("station_code", "测站编码", String, Public),
                    ("water_level", "实时水位", Decimal, Public),
                    ("warning_level", "警戒水位", Decimal, Public),
                    ("observed_at", "观测时间", Datetime, Public),
                ]
            ),
            topic!(
                "防汛物资储备",
                "Flood Control Supplies",
                Place,
                ["T12"],
                ["防汛", "应急物资"],
                items![
                    ("material_name", "物资名称", String, Internal),
                    ("quantity", "储备数量", Integer, Internal),
                    ("warehouse", "储备仓库", String, Internal),
                ]
            ),
            topic!(
                "供水用户用水",
                "Water Consumption of Supply Customers",
                Person,
                ["T01", "T07"],
                ["供水", "用水"],
                items![
                    ("meter_no", "水表编号", String, Internal),
                    ("consumption", "用水量", Decimal, Internal),
                    ("billing_month", "抄表月份", String, Internal),
                ]
            ),
            topic!(
                "城镇污水排入排水管网许可",
                "Sewage Discharge Permits",
                Enterprise,
                ["B05", "T11"],
                ["排水许可"],
                items![
                    ("permit_no", "许可证编号", String, Public),
                    ("discharge_volume", "排水量", Decimal, Public),
                    ("valid_until", "有效期至", Date, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["城市管理"],
        tag: "城市管理",
        system: "urban-management",
        weight: 7,
        topics: &[
            topic!(
                "占道经营巡查",
                "Street Vending Patrols",
                Event,
                ["T10"],
                ["占道经营", "市容"],
                items![
                    ("patrol_no", "巡查编号", String, Internal),
                    ("patrol_officer", "巡查人员", String, Personal),
                    ("handling_result", "处置结果", String, Internal),
                ]
            ),
            topic!(
                "户外广告设置审批",
                "Outdoor Advertising Approvals",
                Enterprise,
                ["B05", "T09"],
                ["户外广告"],
                items![
                    ("approval_no", "审批文号", String, Public),
                    ("sign_location", "设置地点", String, Public),
                    ("sign_area", "设置面积", Decimal, Public),
                ]
            ),
            topic!(
                "生活垃圾分类收运",
                "Household Waste Sorting and Collection",
                Statistic,
                ["T11"],
                ["垃圾分类", "环卫"],
                items![
                    ("waste_category", "垃圾类别", String, Public),
                    ("collected_tonnes", "收运量（吨）", Decimal, Public),
                ]
            ),
            topic!(
                "建筑渣土运输处置",
                "Construction Waste Transport",
                Enterprise,
                ["T09"],
                ["渣土运输"],
                items![
                    ("vehicle_plate", "运输车辆号牌", String, Internal),
                    ("disposal_site", "消纳场所", String, Public),
                    ("permit_valid_until", "核准有效期", Date, Public),
                ]
            ),
            topic!(
                "市政设施养护",
                "Municipal Facility Maintenance",
                Place,
                ["T09"],
                ["市政设施"],
                items![
                    ("facility_type", "设施类型", String, Public),
                    ("maintenance_unit", "养护单位", String, Public),
                    ("condition_rating", "完好等级", String, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["交通运输"],
        tag: "交通运输",
        system: "transport-management",
        weight: 6,
        topics: &[
            topic!(
                "道路运输经营许可",
                "Road Transport Business Licences",
                Enterprise,
                ["B05", "T05"],
                ["道路运输", "许可"],
                items![
                    ("licence_no", "道路运输经营许可证号", String, Public),
                    ("business_scope", "经营范围", String, Public),
                    ("vehicle_count", "营运车辆数", Integer, Public),
                ]
            ),
            topic!(
                "公交线路运营",
                "Bus Route Operations",
                Statistic,
                ["T01"],
                ["公交", "公共交通"],
                items![
                    ("route_name", "线路名称", String, Public),
                    ("daily_ridership", "日客流量", Integer, Public),
                    ("vehicles_in_service", "运营车辆数", Integer, Public),
                ]
            ),
            topic!(
                "出租汽车驾驶员从业资格",
                "Taxi Driver Qualifications",
                Person,
                ["B05"],
                ["出租汽车", "从业资格"],
                items![
                    ("qualification_no", "从业资格证号", String, Internal),
                    ("company_name", "所属企业", String, Public),
                ]
            ),
            topic!(
                "公共停车场",
                "Public Car Parks",
                Place,
                ["T01", "T09"],
                ["停车场", "停车"],
                items![
                    ("space_count", "泊位数", Integer, Public),
                    ("free_spaces", "空余泊位", Integer, Public),
                    ("charging_standard", "收费标准", String, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["生态环境"],
        tag: "生态环境",
        system: "environment-monitoring",
        weight: 6,
        topics: &[
            topic!(
                "环境空气质量监测",
                "Ambient Air Quality Monitoring",
                Place,
                ["T11"],
                ["空气质量", "环境监测"],
                items![
                    ("station_name", "监测站点", String, Public),
                    ("aqi", "空气质量指数", Integer, Public),
                    ("pm25", "PM2.5浓度", Decimal, Public),
                    ("pm10", "PM10浓度", Decimal, Public),
                    ("observed_at", "监测时间", Datetime, Public),
                ]
            ),
            topic!(
                "排污许可",
                "Pollutant Discharge Permits",
                Enterprise,
                ["B05", "T11"],
                ["排污许可", "污染源"],
                items![
                    ("permit_no", "排污许可证编号", String, Public),
                    ("pollutant_types", "主要污染物类别", String, Public),
                    ("valid_until", "有效期至", Date, Public),
                ]
            ),
            topic!(
                "环境行政处罚",
                "Environmental Administrative Penalties",
                Enterprise,
                ["B04", "T11"],
                ["行政处罚", "环境执法"],
                items![
                    ("decision_no", "处罚决定书文号", String, Public),
                    ("penalty_amount", "罚款金额", Decimal, Public),
                    ("violation_facts", "违法事实", String, Public),
                ]
            ),
            topic!(
                "建设项目环境影响评价审批",
                "Environmental Impact Assessment Approvals",
                Enterprise,
                ["T11"],
                ["环评", "审批"],
                items![
                    ("project_name", "项目名称", String, Public),
                    ("approval_no", "批复文号", String, Public),
                    ("approval_date", "批复日期", Date, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["应急管理"],
        tag: "应急管理",
        system: "emergency-management",
        weight: 6,
        topics: &[
            topic!(
                "安全生产许可证",
                "Work Safety Licences",
                Enterprise,
                ["B05", "T05"],
                ["安全生产", "许可证"],
                items![
                    ("licence_no", "安全生产许可证编号", String, Public),
                    ("licensed_scope", "许可范围", String, Public),
                    ("valid_until", "有效期至", Date, Public),
                ]
            ),
            topic!(
                "危险化学品经营许可",
                "Hazardous Chemicals Business Licences",
                Enterprise,
                ["B05", "T05"],
                ["危险化学品"],
                items![
                    ("licence_no", "经营许可证编号", String, Public),
                    ("chemical_names", "经营品种", String, Internal),
                    ("storage_address", "储存地址", String, Internal),
                ]
            ),
            topic!(
                "应急避难场所",
                "Emergency Shelters",
                Place,
                ["T12"],
                ["应急避难", "应急"],
                items![
                    ("capacity", "可容纳人数", Integer, Public),
                    ("shelter_area", "有效避难面积", Decimal, Public),
                    ("shelter_level", "场所类型", String, Public),
                ]
            ),
            topic!(
                "生产安全事故",
                "Work Safety Accidents",
                Event,
                ["T05", "T12"],
                ["安全事故"],
                items![
                    ("accident_type", "事故类型", String, Internal),
                    ("casualties", "伤亡人数", Integer, Internal),
                    ("direct_loss", "直接经济损失", Decimal, Internal),
                ]
            ),
        ],
    },
    Department {
        keywords: &["司法"],
        tag: "司法",
        system: "justice-services",
        weight: 5,
        topics: &[
            topic!(
                "律师执业",
                "Lawyer Practice Licences",
                Person,
                ["B05"],
                ["律师", "法律服务"],
                items![
                    ("practice_certificate_no", "律师执业证号", String, Public),
                    ("law_firm", "执业机构", String, Public),
                    ("practice_status", "执业状态", String, Public),
                ]
            ),
            topic!(
                "人民调解案件",
                "People's Mediation Cases",
                Event,
                ["T10", "T12"],
                ["人民调解", "矛盾纠纷"],
                items![
                    ("dispute_type", "纠纷类型", String, Internal),
                    ("mediation_result", "调解结果", String, Internal),
                    ("committee_name", "调解委员会", String, Public),
                ]
            ),
            topic!(
                "法律援助",
                "Legal Aid",
                Person,
                ["T01"],
                ["法律援助"],
                items![
                    ("case_type", "案件类型", String, Sensitive),
                    ("aid_lawyer", "承办律师", String, Internal),
                ]
            ),
            topic!(
                "公证书",
                "Notarial Certificates",
                Person,
                ["B05"],
                ["公证"],
                items![
                    ("notarial_certificate_no", "公证书编号", String, Internal),
                    ("notarization_matter", "公证事项", String, Sensitive),
                ]
            ),
        ],
    },
    Department {
        keywords: &["财政"],
        tag: "财政",
        system: "public-finance",
        weight: 4,
        topics: &[
            topic!(
                "政府采购合同",
                "Government Procurement Contracts",
                Enterprise,
                ["T08"],
                ["政府采购"],
                items![
                    ("contract_no", "合同编号", String, Public),
                    ("project_name", "采购项目名称", String, Public),
                    ("contract_amount", "合同金额", Decimal, Public),
                ]
            ),
            topic!(
                "财政预算执行",
                "Budget Execution",
                Statistic,
                [],
                ["预算", "财政"],
                items![
                    ("budget_item", "预算科目", String, Public),
                    ("budget_amount", "预算数", Decimal, Public),
                    ("executed_amount", "执行数", Decimal, Public),
                ]
            ),
            topic!(
                "非税收入缴款",
                "Non-tax Revenue Payments",
                Event,
                [],
                ["非税收入"],
                items![
                    ("payment_no", "缴款码", String, Internal),
                    ("payer_name", "缴款人", String, Personal),
                    ("amount", "缴款金额", Decimal, Internal),
                ]
            ),
        ],
    },
    Department {
        keywords: &["统计"],
        tag: "统计",
        system: "statistics",
        weight: 4,
        topics: &[
            topic!(
                "国民经济主要指标",
                "Main Economic Indicators",
                Statistic,
                [],
                ["统计", "经济"],
                items![]
            ),
            topic!(
                "人口抽样调查",
                "Population Sample Survey",
                Statistic,
                ["B01"],
                ["人口", "统计调查"],
                items![("sample_size", "样本量", Integer, Public),]
            ),
            topic!(
                "规模以上工业企业",
                "Industrial Enterprises above Designated Size",
                Enterprise,
                ["B02"],
                ["工业", "统计"],
                items![
                    ("industry_code", "行业代码", String, Public),
                    ("output_value", "工业总产值", Decimal, Internal),
                ]
            ),
        ],
    },
    Department {
        keywords: &["发展和改革"],
        tag: "发展改革",
        system: "development-reform",
        weight: 5,
        topics: &[
            topic!(
                "固定资产投资项目",
                "Fixed Asset Investment Projects",
                Enterprise,
                ["T09"],
                ["投资项目", "项目审批"],
                items![
                    ("project_code", "项目代码", String, Public),
                    ("project_name", "项目名称", String, Public),
                    ("total_investment", "总投资", Decimal, Public),
                ]
            ),
            topic!(
                "公共信用信息",
                "Public Credit Information",
                Enterprise,
                ["B04", "T08"],
                ["社会信用", "信用"],
                items![
                    ("credit_record_type", "信用记录类型", String, Public),
                    ("record_content", "记录内容", String, Public),
                    ("source_department", "来源部门", String, Public),
                ]
            ),
            topic!(
                "信用修复",
                "Credit Restoration",
                Enterprise,
                ["B04", "T08"],
                ["信用修复", "信用"],
                items![
                    ("restoration_date", "修复日期", Date, Public),
                    ("restored_record", "修复记录", String, Public),
                ]
            ),
            topic!(
                "重要商品价格监测",
                "Key Commodity Price Monitoring",
                Statistic,
                ["T06"],
                ["价格监测", "价格"],
                items![
                    ("commodity_name", "商品名称", String, Public),
                    ("average_price", "平均价格", Decimal, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["工业和信息化"],
        tag: "工业和信息化",
        system: "industry-information",
        weight: 4,
        topics: &[
            topic!(
                "重点用能企业能耗",
                "Energy Use of Key Energy-consuming Enterprises",
                Enterprise,
                ["T07"],
                ["能耗", "节能"],
                items![
                    ("energy_consumption", "综合能耗", Decimal, Internal),
                    ("electricity_use", "用电量", Decimal, Internal),
                ]
            ),
            topic!(
                "专精特新中小企业认定",
                "Specialised and Innovative SME Recognition",
                Enterprise,
                ["B02"],
                ["专精特新", "中小企业"],
                items![
                    ("recognition_batch", "认定批次", String, Public),
                    ("main_products", "主导产品", String, Public),
                ]
            ),
            topic!(
                "5G基站建设",
                "5G Base Station Construction",
                Place,
                ["T09"],
                ["5G", "信息基础设施"],
                items![
                    ("operator", "运营商", String, Public),
                    ("station_count", "基站数量", Integer, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["科学技术"],
        tag: "科技",
        system: "science-technology",
        weight: 3,
        topics: &[
            topic!(
                "高新技术企业认定",
                "High-tech Enterprise Recognition",
                Enterprise,
                ["B02", "B05"],
                ["高新技术企业", "科技"],
                items![
                    ("certificate_no", "证书编号", String, Public),
                    ("technical_field", "技术领域", String, Public),
                ]
            ),
            topic!(
                "科技计划项目",
                "Science and Technology Programme Projects",
                Enterprise,
                [],
                ["科技项目"],
                items![
                    ("project_no", "项目编号", String, Public),
                    ("funding_amount", "资助金额", Decimal, Public),
                ]
            ),
            topic!(
                "技术合同登记",
                "Technology Contract Registration",
                Enterprise,
                [],
                ["技术合同", "科技"],
                items![
                    ("contract_type", "合同类型", String, Public),
                    ("transaction_amount", "成交金额", Decimal, Internal),
                ]
            ),
        ],
    },
    Department {
        keywords: &["农业农村"],
        tag: "农业农村",
        system: "agriculture",
        weight: 4,
        topics: &[
            topic!(
                "农产品质量安全检测",
                "Agricultural Product Safety Testing",
                Enterprise,
                ["T04"],
                ["农产品", "食品安全"],
                items![
                    ("sample_name", "样品名称", String, Public),
                    ("test_result", "检测结果", String, Public),
                ]
            ),
            topic!(
                "农村土地承包经营权",
                "Rural Land Contract Rights",
                Person,
                ["B03", "B05"],
                ["土地承包", "农村"],
                items![
                    ("contract_no", "承包合同编号", String, Internal),
                    ("contracted_area", "承包面积", Decimal, Internal),
                ]
            ),
            topic!(
                "动物防疫",
                "Animal Epidemic Prevention",
                Place,
                ["T04", "T12"],
                ["动物防疫"],
                items![
                    ("farm_name", "养殖场名称", String, Public),
                    ("livestock_count", "存栏量", Integer, Internal),
                ]
            ),
            topic!(
                "家庭农场名录",
                "Family Farm Directory",
                Enterprise,
                ["B02"],
                ["家庭农场", "农业"],
                items![
                    ("farm_type", "农场类型", String, Public),
                    ("operating_area", "经营面积", Decimal, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["商务"],
        tag: "商务",
        system: "commerce",
        weight: 4,
        topics: &[
            topic!(
                "对外贸易经营者备案",
                "Foreign Trade Operator Registration",
                Enterprise,
                ["B02"],
                ["外贸"],
                items![
                    ("filing_no", "备案登记表编号", String, Public),
                    ("customs_code", "海关编码", String, Public),
                ]
            ),
            topic!(
                "外商投资企业",
                "Foreign-invested Enterprises",
                Enterprise,
                ["B02"],
                ["外资", "投资"],
                items![
                    ("investor_country", "投资方国别", String, Public),
                    ("contracted_foreign_capital", "合同外资", Decimal, Public),
                ]
            ),
            topic!(
                "单用途商业预付卡",
                "Single-purpose Prepaid Cards",
                Enterprise,
                ["T08"],
                ["预付卡", "消费"],
                items![
                    ("cards_issued", "发卡数量", Integer, Internal),
                    ("prepaid_balance", "预收资金余额", Decimal, Internal),
                ]
            ),
            topic!(
                "重点商贸企业销售",
                "Sales of Key Retail Enterprises",
                Statistic,
                ["T06"],
                ["消费", "商贸"],
                items![("retail_sales", "零售额", Decimal, Public),]
            ),
        ],
    },
    Department {
        keywords: &["文化和旅游"],
        tag: "文化旅游",
        system: "culture-tourism",
        weight: 4,
        topics: &[
            topic!(
                "A级旅游景区",
                "A-level Scenic Areas",
                Place,
                ["T01"],
                ["旅游景区", "旅游"],
                items![
                    ("scenic_level", "景区等级", String, Public),
                    ("daily_capacity", "日最大承载量", Integer, Public),
                    ("visitor_count", "实时游客数", Integer, Public),
                ]
            ),
            topic!(
                "旅行社经营许可",
                "Travel Agency Licences",
                Enterprise,
                ["B05"],
                ["旅行社", "许可"],
                items![
                    ("licence_no", "旅行社业务经营许可证号", String, Public),
                    ("outbound_allowed", "是否经营出境业务", Boolean, Public),
                ]
            ),
            topic!(
                "文物保护单位",
                "Protected Cultural Heritage Sites",
                Place,
                ["B03"],
                ["文物保护", "文化遗产"],
                items![
                    ("protection_level", "保护级别", String, Public),
                    ("era", "年代", String, Public),
                ]
            ),
            topic!(
                "公共文化场馆",
                "Public Cultural Venues",
                Place,
                ["T01"],
                ["图书馆", "文化场馆"],
                items![
                    ("venue_type", "场馆类型", String, Public),
                    ("opening_hours", "开放时间", String, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["退役军人"],
        tag: "退役军人",
        system: "veterans-affairs",
        weight: 3,
        topics: &[
            topic!(
                "退役军人信息采集",
                "Veteran Information Collection",
                Person,
                ["B01"],
                ["退役军人"],
                items![
                    ("service_branch", "服役军种", String, Sensitive),
                    ("discharge_date", "退役时间", Date, Sensitive),
                    ("resettlement_method", "安置方式", String, Internal),
                ]
            ),
            topic!(
                "优抚对象抚恤补助",
                "Pensions and Subsidies for Entitled Groups",
                Person,
                ["T03"],
                ["优抚", "补助"],
                items![
                    ("entitlement_category", "优抚类别", String, Sensitive),
                    ("monthly_amount", "月补助金额", Decimal, Sensitive),
                ]
            ),
        ],
    },
    Department {
        keywords: &["审计"],
        tag: "审计",
        system: "audit",
        weight: 2,
        topics: &[
            topic!(
                "审计项目计划",
                "Audit Project Plans",
                Statistic,
                [],
                ["审计"],
                items![
                    ("audit_project", "审计项目", String, Internal),
                    ("audited_unit", "被审计单位", String, Internal),
                ]
            ),
            topic!(
                "审计发现问题整改",
                "Rectification of Audit Findings",
                Event,
                ["T08"],
                ["审计整改"],
                items![
                    ("finding", "审计发现问题", String, Internal),
                    ("rectification_status", "整改情况", String, Internal),
                ]
            ),
        ],
    },
    Department {
        keywords: &["体育"],
        tag: "体育",
        system: "sports",
        weight: 2,
        topics: &[
            topic!(
                "公共体育设施",
                "Public Sports Facilities",
                Place,
                ["T01"],
                ["体育设施", "全民健身"],
                items![
                    ("facility_type", "设施类型", String, Public),
                    ("opening_hours", "开放时间", String, Public),
                ]
            ),
            topic!(
                "社会体育指导员",
                "Community Sports Instructors",
                Person,
                ["T01"],
                ["全民健身"],
                items![
                    ("instructor_level", "等级", String, Public),
                    ("sport_item", "指导项目", String, Public),
                ]
            ),
            topic!(
                "体育赛事活动",
                "Sports Events",
                Event,
                ["T01"],
                ["体育赛事"],
                items![
                    ("event_name", "赛事名称", String, Public),
                    ("participants", "参赛人数", Integer, Public),
                ]
            ),
        ],
    },
    Department {
        keywords: &["政务服务"],
        tag: "政务服务",
        system: "hotline-12345",
        weight: 6,
        topics: &[
            topic!(
                "12345热线工单",
                "12345 Hotline Tickets",
                Event,
                ["T01", "T10"],
                ["12345", "热线", "诉求"],
                items![
                    ("ticket_no", "工单编号", String, Internal),
                    ("caller_name", "来电人姓名", String, Personal),
                    ("caller_phone", "来电号码", String, Personal),
                    ("appeal_content", "诉求内容", String, Sensitive),
                    ("handling_department", "承办单位", String, Public),
                    ("satisfaction", "满意度", String, Internal),
                ]
            ),
            topic!(
                "政务服务事项办件",
                "Government Service Case Handling",
                Event,
                ["T01"],
                ["政务服务", "一网通办"],
                items![
                    ("case_no", "办件编号", String, Internal),
                    ("service_item", "事项名称", String, Public),
                    ("applicant_name", "申请人", String, Personal),
                    ("completed_at", "办结时间", Datetime, Internal),
                ]
            ),
            topic!(
                "政务服务好差评",
                "Government Service Ratings",
                Event,
                ["T01"],
                ["好差评", "政务服务"],
                items![
                    ("rating", "评价等级", String, Internal),
                    ("comment", "评价内容", String, Sensitive),
                ]
            ),
        ],
    },
    Department {
        keywords: &["信息中心"],
        tag: "电子政务",
        system: "e-government-cloud",
        weight: 2,
        topics: &[
            topic!(
                "政务云资源使用",
                "Government Cloud Resource Usage",
                Statistic,
                [],
                ["政务云"],
                items![
                    ("tenant_department", "使用部门", String, Internal),
                    ("vcpu_count", "虚拟CPU核数", Integer, Internal),
                    ("storage_tb", "存储容量（TB）", Decimal, Internal),
                ]
            ),
            topic!(
                "电子政务外网接入",
                "E-government Extranet Access",
                Place,
                [],
                ["政务外网"],
                items![
                    ("access_unit", "接入单位", String, Internal),
                    ("bandwidth_mbps", "带宽（Mbps）", Integer, Internal),
                ]
            ),
        ],
    },
    Department {
        keywords: &["数据"],
        tag: "公共数据",
        system: "data-sharing-platform",
        weight: 3,
        topics: &[
            topic!(
                "政务数据共享申请",
                "Data Sharing Requests",
                Event,
                ["T01"],
                ["数据共享"],
                items![
                    ("request_no", "申请编号", String, Internal),
                    ("requesting_department", "申请部门", String, Public),
                    ("requested_resource", "申请资源", String, Public),
                    ("review_result", "审核结果", String, Internal),
                ]
            ),
            topic!(
                "公共数据开放目录",
                "Open Data Catalogue",
                Statistic,
                [],
                ["数据开放"],
                items![
                    ("resource_count", "资源数", Integer, Public),
                    ("download_count", "下载次数", Integer, Public),
                ]
            ),
            topic!(
                "数据质量核查",
                "Data Quality Checks",
                Event,
                [],
                ["数据质量", "数据治理"],
                items![
                    ("checked_resource", "核查资源", String, Internal),
                    ("issue_count", "问题数", Integer, Internal),
                ]
            ),
        ],
    },
];

/// The department publishing what any government publishes, for providers the vocabulary does
/// not know.
pub(crate) const GENERAL_GOVERNMENT: usize = 0;

/// The department a provider of that Chinese name belongs to, if the vocabulary knows it.
pub(crate) fn department_for(provider_name: &str) -> Option<usize> {
    DEPARTMENTS.iter().position(|department| {
        department
            .keywords
            .iter()
            .any(|keyword| provider_name.contains(keyword))
    })
}

/// Items that many topics end with.
pub(crate) static TRAILING_ITEMS: &[ItemSpec] = items![
    ("updated_at", "更新时间", Datetime, Internal),
    ("data_source", "数据来源", String, Public),
    ("remark", "备注", String, Internal),
];

/// Second sentences of summaries: what the resource is used for.
pub(crate) static USES: &[&str] = &[
    "可用于政务服务事项办理中的信息核验，减少群众提交证明材料。",
    "支撑跨部门联合监管和信用评价。",
    "供相关部门开展统计分析和辅助决策使用。",
    "用于“一网通办”业务协同和材料免提交。",
    "为基层治理和网格化管理提供数据支撑。",
    "支撑城市运行监测和应急指挥调度。",
    "数据经脱敏处理后提供共享。",
];

/// Conditions of conditional sharing.
pub(crate) static CONDITIONS: &[&str] = &[
    "仅限因履行法定职责需要的部门申请使用，使用部门须签订数据安全承诺书。",
    "仅用于政务服务事项办理中的信息核验，不得用于其他用途。",
    "须经数据提供部门审核同意，按最小必要原则提供。",
    "个人信息须经脱敏处理后共享，申请部门需说明使用场景。",
    "限于本市行政机关内部使用，不得向第三方提供。",
];

/// Verbs of summaries: how the provider came to hold the records.
pub(crate) static VERBS: &[&str] = &["归集", "登记", "采集", "汇总", "核发", "管理", "维护"];

pub(crate) fn cycle_zh(cycle: civitas_core::catalog::UpdateCycle) -> &'static str {
    use civitas_core::catalog::UpdateCycle;
    match cycle {
        UpdateCycle::Realtime => "实时",
        UpdateCycle::Daily => "每日",
        UpdateCycle::Weekly => "每周",
        UpdateCycle::Monthly => "每月",
        UpdateCycle::Quarterly => "每季度",
        UpdateCycle::HalfYearly => "每半年",
        UpdateCycle::Yearly => "每年",
        UpdateCycle::Irregular => "不定期",
    }
}

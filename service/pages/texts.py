"""Every text of the consumer page, in zh-CN (the default) and English; one dict per language."""

# Chinese text is written with fullwidth punctuation (comma, colon, brackets): correct there, not ambiguous.
# ruff: noqa: RUF001

from __future__ import annotations

from typing import Final, Literal

Lang = Literal["zh-CN", "en"]
DEFAULT_LANG: Final[Lang] = "zh-CN"

# Keys are shared by the server-side templates (`$t_<key>`) and the inline script (`t.<key>`).
TEXTS: Final[dict[Lang, dict[str, str]]] = {
    "zh-CN": {
        "title": "扫码验证",
        "authentic": "防伪码验证通过",
        "authentic_lead": "此码由品牌签发，签名有效。",
        "gtin": "商品条码",
        "lot": "批号",
        "production_date": "生产日期",
        "yes": "是",
        "no": "否",
        "checking": "正在查询扫码记录…",
        "noscript": "请启用 JavaScript 以记录本次扫码并查看扫码记录。",
        "verdict_genuine_first": "正品 · 首次扫码",
        "verdict_genuine_first_detail": "您是第一位扫描此码的人。",
        "verdict_genuine_repeat": "正品 · 此码已被扫描过",
        "verdict_genuine_repeat_detail": (
            "此码已被扫描 {count} 次，首次扫描于 {time}。如果您刚刚打开包装，请留意。"
        ),
        "verdict_suspect_clone": "可疑：此码可能被复制",
        "verdict_suspect_clone_detail": "此码的扫码记录异常，可能被复制到了其他商品上。请谨慎购买。",
        "verdict_not_activated": "可疑：此码尚未发货激活",
        "verdict_not_activated_detail": "品牌尚未将此码发往销售渠道。请谨慎购买，并联系品牌客服。",
        "verdict_counterfeit": "无法验证此码",
        "verdict_counterfeit_detail": "此码不是品牌签发的有效码，商品可能是仿冒品。",
        "retry": "重试",
        "points": "积分：{points}",
        "reward_points": "本次扫码获得 {points} 积分",
        "reward_won": "恭喜！您抽中了：{prize}",
        "reward_claim": "请在下方填写收货地址领取实物奖品。",
        "reward_no_prize": "谢谢参与，本次未中奖。",
        "join_title": "成为会员",
        "join_lead": "绑定手机号，积分和奖励不会丢失。",
        "phone": "手机号",
        "send_code": "获取验证码",
        "code_sent": "验证码已发送，5 分钟内有效。",
        "otp": "短信验证码（6 位数字）",
        "consents": "授权（可选，不勾选也可加入）",
        "consent_marketing": "我同意品牌通过短信向我发送优惠和活动信息（可随时退订）",
        "consent_location": "我同意品牌将我扫码时分享的大致位置（约 1 公里）用于防伪和防窜货分析",
        "profile": "个人资料（可选）",
        "name": "称呼",
        "gender": "性别",
        "gender_none": "不透露",
        "gender_female": "女",
        "gender_male": "男",
        "gender_other": "其他",
        "birthday": "生日",
        "enrol": "确认加入",
        "enrolled_title": "您已是会员",
        "enrolled_detail": "手机尾号 {last4} 已绑定。",
        "enrolled_welcome": "欢迎回来，会员。",
        "location_title": "分享位置（可选）",
        "location_lead": "分享位置可帮助品牌发现假货和窜货。位置会被模糊到约 1 公里。本次扫码未包含位置。",
        "location_agree": "我同意在以后的扫码中分享我的位置",
        "location_share": "开启位置分享",
        "location_on": "已开启：以后的扫码会附带您的大致位置。",
        "location_stop": "停止分享位置",
        "location_off": "已关闭：扫码不会附带位置。",
        "location_denied": "未能获取位置，扫码不会附带位置。",
        "location_need_agree": "请先勾选同意。",
        "unverified_title": "无法验证此码",
        "unverified_lead": "我们无法确认此码是品牌签发的。它可能印刷有误、已被作废，或者商品是仿冒品。",
        "unverified_advice": "请勿购买来源不明的商品。如有疑问，请联系品牌客服。",
        "unverified_logged": "本次查询已匿名记录，以帮助品牌打击假货。",
        "not_found_lead": "这不是一个有效的扫码链接。请直接用手机相机扫描商品上的二维码。",
        "logistics_title": "物流标签",
        "logistics_lead": (
            "这是整箱或整托货物的物流标签（SSCC {sscc}），不是商品码。请扫描商品本身上的二维码验证真伪。"
        ),
        "unavailable_title": "服务繁忙",
        "unavailable_lead": "暂时无法验证，请稍后刷新页面重试。",
        "err_network": "网络连接失败，请检查网络后重试。",
        "err_rate": "扫码或请求过于频繁，请稍后再试。",
        "err_rate_wait": "扫码或请求过于频繁，请 {seconds} 秒后再试。",
        "err_otp": "验证码错误或已过期，请重新获取。",
        "err_phone": "请检查手机号是否正确。",
        "err_invalid": "请检查填写的内容。",
        "err_token": "请重新扫描商品上的二维码后再试。",
        "err_busy": "服务繁忙，请稍后再试。",
        "err_generic": "出错了（{status}），请稍后再试。",
        "verifying_slow": "网络较慢，正在验证…",
        "offline": "您的手机当前没有网络。联网后将自动重试，也可以点击“重试”。",
        "err_timeout": "网络太慢，未能及时收到结果。请点击“重试”。",
        "draw_card": "幸运抽奖",
        "draw_revealing": "正在开奖…",
        "reward_coupon": "获得优惠券：{name}（券码 {code}）",
        "claim_title": "领取奖品",
        "claim_lead": "收货信息加密保存，仅用于寄送奖品；发货前可以修改。",
        "claim_recipient": "收件人姓名",
        "claim_phone": "收件人手机号",
        "claim_address": "详细地址（省、市、区、街道、门牌号）",
        "claim_postal_code": "邮政编码（可选）",
        "claim_submit": "提交收货地址",
        "claim_open": "填写收货地址",
        "claim_change": "修改收货地址",
        "claim_done": "已收到收货地址，我们会尽快寄出奖品。发货前可以修改。",
        "claim_err_recipient": "请填写收件人姓名。",
        "claim_err_phone": "请填写正确的手机号。",
        "claim_err_address": "请填写详细地址（至少 5 个字）。",
        "claim_err_postal_code": "邮政编码为 6 位数字，不知道可以不填。",
        "claim_shipped": "奖品已发货，收货地址无法再修改。",
        "wallet_title": "我的积分、卡券和奖品",
        "wallet_loading": "正在加载…",
        "wallet_balance": "积分余额：{points}",
        "wallet_expiring": "其中 {points} 积分即将过期。",
        "wallet_history": "最近积分明细",
        "wallet_coupons": "优惠券",
        "wallet_prizes": "奖品",
        "wallet_none": "暂无",
        "ledger_earn": "获得",
        "ledger_redeem": "使用",
        "ledger_expire": "过期",
        "ledger_adjust": "调整",
        "coupon_amount": "立减 {amount} 元",
        "coupon_percent": "减 {percent}%",
        "coupon_min_spend": "满 {amount} 元可用",
        "coupon_code": "券码 {code}",
        "coupon_until": "有效期至 {date}",
        "coupon_usable": "可使用",
        "coupon_used": "已使用",
        "coupon_expired": "已过期",
        "coupon_not_yet_valid": "未到使用时间",
        "prize_to_claim": "待填写收货地址",
        "prize_claimed": "已提交收货地址",
        "prize_shipped": "已发货",
        "prize_tracking": "{carrier} 运单号 {tracking}",
        "prize_delivered": "已发放",
        "privacy_title": "隐私说明",
        "privacy_device": (
            "我们记录：本机浏览器随机生成的设备编号（不是设备指纹）、扫码时间和所扫的码，"
            "用于验证真伪、防止刷奖和发放奖励。"
        ),
        "privacy_location": "位置：只有在您勾选同意后才随扫码发送，并模糊到约 1 公里。",
        "privacy_phone": (
            "手机号和个人资料：只有在您加入会员时才收集，加密保存；领奖地址同样加密保存，仅用于寄送奖品。"
        ),
        "privacy_rights": (
            "您可以随时下载我们保存的您的全部数据，或删除您的个人数据（积分和扫码统计会匿名保留）。"
        ),
        "privacy_consents": "我的授权（可随时更改）",
        "privacy_marketing": "接收品牌的短信优惠和活动信息",
        "privacy_location_use": "将我扫码时分享的大致位置用于防伪和防窜货分析",
        "privacy_consents_saved": "已保存。撤回短信授权后，我们不会再向您发送营销短信。",
        "privacy_export": "下载我的数据",
        "privacy_erase": "删除我的个人数据",
        "privacy_erase_confirm": "确认删除（无法恢复）",
        "privacy_erased": "您的个人数据已删除。",
    },
    "en": {
        "title": "Scan check",
        "authentic": "Authentic code",
        "authentic_lead": "This code was issued by the brand and its signature is valid.",
        "gtin": "GTIN",
        "lot": "Lot",
        "production_date": "Production date",
        "yes": "yes",
        "no": "no",
        "checking": "Checking the scan history…",
        "noscript": "Turn on JavaScript to record this scan and see its history.",
        "verdict_genuine_first": "Genuine · first scan",
        "verdict_genuine_first_detail": "You are the first person to scan this code.",
        "verdict_genuine_repeat": "Genuine · scanned before",
        "verdict_genuine_repeat_detail": (
            "This code has been scanned {count} times, first on {time}. "
            "If you just opened the pack, take care."
        ),
        "verdict_suspect_clone": "Suspicious: this code may have been copied",
        "verdict_suspect_clone_detail": (
            "The scans of this code look unusual: it may have been copied onto other goods. Buy with care."
        ),
        "verdict_not_activated": "Suspicious: this code was never shipped",
        "verdict_not_activated_detail": (
            "The brand has not released this code for sale yet. Buy with care and contact the brand."
        ),
        "verdict_counterfeit": "Could not verify this code",
        "verdict_counterfeit_detail": (
            "This is not a valid code of the brand: the product may be counterfeit."
        ),
        "retry": "Try again",
        "points": "Points: {points}",
        "reward_points": "This scan earned you {points} points",
        "reward_won": "Congratulations! You won: {prize}",
        "reward_claim": "Give your shipping address below to receive your prize.",
        "reward_no_prize": "Thanks for taking part: no prize this time.",
        "join_title": "Become a member",
        "join_lead": "Add your phone number so your points and rewards are kept.",
        "phone": "Phone number",
        "send_code": "Send code",
        "code_sent": "Code sent; it is valid for 5 minutes.",
        "otp": "SMS code (6 digits)",
        "consents": "Permissions (optional: you can join without them)",
        "consent_marketing": "Send me the brand's offers and news by SMS (stop them at any time)",
        "consent_location": (
            "The brand may use the approximate location (about 1 km) I share when scanning "
            "to find fakes and grey-market goods"
        ),
        "profile": "Profile (optional)",
        "name": "Name",
        "gender": "Gender",
        "gender_none": "Prefer not to say",
        "gender_female": "Female",
        "gender_male": "Male",
        "gender_other": "Other",
        "birthday": "Birthday",
        "enrol": "Join",
        "enrolled_title": "You are a member",
        "enrolled_detail": "Phone ending {last4} is linked.",
        "enrolled_welcome": "Welcome back, member.",
        "location_title": "Share location (optional)",
        "location_lead": (
            "Your location helps the brand find fakes and grey-market goods. It is rounded to about 1 km. "
            "This scan was sent without it."
        ),
        "location_agree": "I agree to share my location with my next scans",
        "location_share": "Share location",
        "location_on": "On: your next scans include your approximate location.",
        "location_stop": "Stop sharing location",
        "location_off": "Off: scans are sent without location.",
        "location_denied": "Could not get your location; scans are sent without it.",
        "location_need_agree": "Tick the box to agree first.",
        "unverified_title": "Could not verify this code",
        "unverified_lead": (
            "We cannot confirm that the brand issued this code. It may be misprinted or voided, "
            "or the product may be counterfeit."
        ),
        "unverified_advice": "Do not buy goods of unknown origin. If in doubt, contact the brand.",
        "unverified_logged": "This check was recorded anonymously to help the brand fight fakes.",
        "not_found_lead": (
            "This is not a valid scan link. Scan the QR code on the product with your phone's camera."
        ),
        "logistics_title": "Shipping label",
        "logistics_lead": (
            "This is the shipping label of a case or pallet (SSCC {sscc}), not a product's code. "
            "Scan the QR code on the item itself to check it."
        ),
        "unavailable_title": "Busy",
        "unavailable_lead": "We cannot check codes right now. Reload the page in a moment.",
        "err_network": "No connection. Check your network and try again.",
        "err_rate": "Too many scans or requests. Please try again later.",
        "err_rate_wait": "Too many scans or requests. Please try again in {seconds} seconds.",
        "err_otp": "Wrong or expired code. Ask for a new one.",
        "err_phone": "Check the phone number.",
        "err_invalid": "Check what you entered.",
        "err_token": "Scan the QR code on the product again, then try again.",
        "err_busy": "The service is busy. Please try again shortly.",
        "err_generic": "Something went wrong ({status}). Please try again later.",
        "verifying_slow": "Slow network: still verifying…",
        "offline": (
            "Your phone is offline. The scan is sent again when you are back online, or tap Try again."
        ),
        "err_timeout": "The network is too slow: no answer in time. Tap Try again.",
        "draw_card": "Lucky draw",
        "draw_revealing": "Drawing…",
        "reward_coupon": "You got a coupon: {name} (code {code})",
        "claim_title": "Claim your prize",
        "claim_lead": (
            "Your shipping details are stored encrypted and used only to send the prize; "
            "you can change them until it ships."
        ),
        "claim_recipient": "Recipient's name",
        "claim_phone": "Recipient's phone",
        "claim_address": "Full address (province, city, district, street, number)",
        "claim_postal_code": "Postal code (optional)",
        "claim_submit": "Send shipping address",
        "claim_open": "Enter shipping address",
        "claim_change": "Change shipping address",
        "claim_done": (
            "We have your shipping address and will send the prize soon. You can change it until it ships."
        ),
        "claim_err_recipient": "Enter the recipient's name.",
        "claim_err_phone": "Enter a valid phone number.",
        "claim_err_address": "Enter the full address (at least 5 characters).",
        "claim_err_postal_code": "A postal code is 6 digits; leave it empty if you do not know it.",
        "claim_shipped": "The prize has shipped: its address can no longer change.",
        "wallet_title": "My points, coupons and prizes",
        "wallet_loading": "Loading…",
        "wallet_balance": "Points balance: {points}",
        "wallet_expiring": "{points} of them expire soon.",
        "wallet_history": "Latest points",
        "wallet_coupons": "Coupons",
        "wallet_prizes": "Prizes",
        "wallet_none": "None yet",
        "ledger_earn": "Earned",
        "ledger_redeem": "Used",
        "ledger_expire": "Expired",
        "ledger_adjust": "Adjusted",
        "coupon_amount": "{amount} yuan off",
        "coupon_percent": "{percent}% off",
        "coupon_min_spend": "on spends from {amount} yuan",
        "coupon_code": "Code {code}",
        "coupon_until": "valid until {date}",
        "coupon_usable": "Usable",
        "coupon_used": "Used",
        "coupon_expired": "Expired",
        "coupon_not_yet_valid": "Not valid yet",
        "prize_to_claim": "Shipping address needed",
        "prize_claimed": "Address received",
        "prize_shipped": "Shipped",
        "prize_tracking": "{carrier} tracking number {tracking}",
        "prize_delivered": "Delivered",
        "privacy_title": "Privacy notice",
        "privacy_device": (
            "We record a random device id made by this browser (not a fingerprint), the time of each scan "
            "and the code scanned: to check codes, stop reward abuse and give rewards."
        ),
        "privacy_location": "Location: sent with scans only after you agree, rounded to about 1 km.",
        "privacy_phone": (
            "Phone and profile: collected only if you join, and stored encrypted; "
            "a prize's shipping address is encrypted too and used only to send it."
        ),
        "privacy_rights": (
            "You can download all the data we hold about you, or erase your personal data, at any time "
            "(points and scan statistics stay, anonymous)."
        ),
        "privacy_consents": "My permissions (change them at any time)",
        "privacy_marketing": "Send me the brand's offers and news by SMS",
        "privacy_location_use": "Use the rough location of my scans against counterfeits and diversion",
        "privacy_consents_saved": (
            "Saved. Once SMS consent is withdrawn, no more marketing texts are sent to you."
        ),
        "privacy_export": "Download my data",
        "privacy_erase": "Erase my personal data",
        "privacy_erase_confirm": "Confirm: erase for good",
        "privacy_erased": "Your personal data has been erased.",
    },
}

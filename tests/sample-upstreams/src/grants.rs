//! The toolhost configuration that lets the reference connectors and the
//! late-parcel workflow reach the sample systems, with the demo operator's
//! voucher rule: what `toolhost demo`, the README's walkthrough and the
//! tests serve with.

/// Vouchers above this (minor units) wait for a reviewer in the demo.
pub const VOUCHER_REVIEW_ABOVE_MINOR: i64 = 5000;

/// The tools the late-parcel workflow's steps may call: its operator grant
/// (append it to [`toolhost_config`] where the workflow is loaded).
pub const WORKFLOW_GRANT: &str = r#"
[plugins.late-parcel]
tools = ["erp.get-order", "erp.get-contract", "crm.*", "logistics.find-shipments", "logistics.report-delay", "coupon.issue-voucher"]
"#;

/// The configuration of the demo (`toolhost demo`) and of the README's
/// walkthrough: [`toolhost_config`] with the Nordpost carrier, and the
/// late-parcel workflow's grant.
pub fn demo_config(addr: std::net::SocketAddr) -> String {
    toolhost_config(addr, "/nordpost/v2", &crate::Keys::default().nordpost) + WORKFLOW_GRANT
}

/// The toolhost grants that let the reference connectors reach the sample
/// upstreams at `addr`, with their demo credentials (the coupon connector
/// reports to the sample voucher ledger), and the operator's approval rule:
/// vouchers above [`VOUCHER_REVIEW_ABOVE_MINOR`] wait for a reviewer
/// (smaller ones pass; credit notes, `risk = "high"` and named by no rule,
/// always wait).
pub fn toolhost_config(addr: std::net::SocketAddr, logistics_base: &str, logistics_key: &str) -> String {
    let origin = format!("http://{addr}");
    let keys = crate::Keys::default();
    let plugin = |name: &str, methods: &str, base: &str, key: &str| {
        format!(
            "[plugins.{name}]\nhttp = [{{ origin = \"{origin}\", methods = [{methods}] }}]\nsecrets = {{ api-key = {{ value = \"{key}\" }} }}\nconfig = {{ base-url = \"{origin}{base}\" }}\n\n"
        )
    };
    plugin("crm", "\"GET\", \"POST\", \"PATCH\"", "/crm/v1", &keys.crm)
        + &plugin("erp", "\"GET\", \"POST\"", "/erp/v1", &keys.erp)
        + &plugin("logistics", "\"GET\"", logistics_base, logistics_key)
        + &format!(
            "[plugins.coupon]\nhttp = [{{ origin = \"{origin}\", methods = [\"POST\"] }}]\nsecrets = {{ ledger-token = {{ value = \"{}\" }} }}\nconfig = {{ ledger-url = \"{origin}/ledger/v1\", max-value-minor = \"100000\" }}\n\n",
            keys.ledger
        )
        + &format!(
            "[[approvals.rules]]\nname = \"vouchers over {}.{:02}\"\ntools = [\"coupon.issue-voucher\"]\nwhen = \"args.request.value['amount-minor'] > {VOUCHER_REVIEW_ABOVE_MINOR}\"\n",
            VOUCHER_REVIEW_ABOVE_MINOR / 100,
            VOUCHER_REVIEW_ABOVE_MINOR % 100
        )
}

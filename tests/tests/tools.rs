//! Every exported function becomes a tool whose schema comes from its WIT
//! types, and whose JSON arguments round-trip through component values.

use serde_json::{json, Value};
use toolhost::{CallError, Runtime};
use toolhost_tests::{guest, reference, runtime_in, Scratch};

async fn loaded(data: &Scratch, bundles: &[std::path::PathBuf]) -> Runtime {
    let runtime = runtime_in(data.path(), "");
    for b in bundles {
        runtime.plugins().load_bundle(b).await.unwrap();
    }
    runtime
}

fn tool(runtime: &Runtime, name: &str) -> toolhost::ToolInfo {
    runtime
        .tools()
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tool {name}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_coupon_connector_lists_its_tools_with_schemas_from_the_contract() {
    let data = Scratch::new("list");
    let runtime = loaded(&data, &[reference("coupon")]).await;
    let names: Vec<String> = runtime.tools().into_iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "coupon.issue-voucher",
            "coupon.list-vouchers",
            "coupon.redeem-voucher",
            "coupon.revoke-voucher",
            "coupon.validate-voucher"
        ]
    );

    let issue = tool(&runtime, "coupon.issue-voucher");
    assert_eq!(issue.function_name, "coupon_issue-voucher");
    assert!(issue.description.starts_with("Issue a voucher to a customer."));
    assert_eq!(serde_json::to_value(issue.risk).unwrap(), json!("high"));
    let request = &issue.parameters["properties"]["request"];
    assert_eq!(issue.parameters["required"], json!(["request"]));
    assert_eq!(request["type"], "object");
    assert_eq!(request["additionalProperties"], false);
    let mut required: Vec<&str> = request["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort();
    assert_eq!(
        required,
        ["customer-id", "idempotency-key", "reason", "valid-days", "value"]
    );
    assert_eq!(request["properties"]["valid-days"]["type"], "integer");
    assert_eq!(request["properties"]["valid-days"]["minimum"], 0);
    assert_eq!(request["properties"]["order-id"]["anyOf"][1], json!({ "type": "null" }));
    assert!(
        request["properties"]["value"]["properties"]["amount-minor"]["description"]
            .as_str()
            .unwrap()
            .contains("minor unit")
    );
    // The result schema is the `ok` side, with the enum spelled out.
    let status = &issue.output_schema.unwrap()["properties"]["status"];
    assert_eq!(status["enum"], json!(["active", "redeemed", "expired", "revoked"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn schemas_cover_every_wit_type() {
    let data = Scratch::new("schema");
    let runtime = loaded(&data, &[guest("echo")]).await;
    let echo = tool(&runtime, "echo.echo");
    let p = &echo.parameters["properties"]["value"]["properties"];
    assert_eq!(p["shape"]["oneOf"][0]["required"], json!(["circle"]));
    assert_eq!(p["shape"]["oneOf"][2], json!({ "const": "empty" }));
    assert_eq!(p["color"]["enum"], json!(["red", "green", "blue"]));
    assert_eq!(p["perms"]["items"]["enum"], json!(["read", "write", "admin"]));
    assert_eq!(p["perms"]["uniqueItems"], true);
    assert_eq!(p["pair"]["prefixItems"][1]["maximum"], 65535);
    assert_eq!(p["initial"]["maxLength"], 1);
    assert_eq!(p["small"]["minimum"], -128);
    assert_eq!(p["outcome"]["oneOf"][1]["required"], json!(["err"]));
    assert_eq!(p["maybe"]["anyOf"][1], json!({ "type": "null" }));
    // Docs of a vendor's own interface are not in our contract: a plain fallback.
    assert!(echo.description.contains("echo"));
}

fn everything() -> Value {
    json!({
        "name": "parcel ✈ 42",
        "count": 4_000_000_000u32,
        "delta": -9_007_199_254_740_993i64,
        "ratio": 0.5,
        "initial": "é",
        "small": -128,
        "tags": ["a", "", "c"],
        "color": "green",
        "perms": ["read", "admin"],
        "shape": { "polygon": [{ "x": 1.5, "y": -2.0, "label": "p" }, { "x": 0.0, "y": 0.0, "label": null }] },
        "maybe": 255,
        "pair": ["left", 65535],
        "outcome": { "err": "bad" },
        "flag": true,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn records_variants_options_lists_and_results_round_trip() {
    let data = Scratch::new("roundtrip");
    let runtime = loaded(&data, &[guest("echo")]).await;
    let value = everything();
    let back = runtime
        .invoke("echo.echo", &json!({ "value": value }))
        .await
        .result
        .unwrap();
    assert_eq!(back, value);

    // Other cases of the same types.
    let mut other = everything();
    other["shape"] = json!("empty");
    other["maybe"] = Value::Null;
    other["outcome"] = json!({ "ok": 7 });
    other["perms"] = json!([]);
    let back = runtime
        .invoke("echo.echo", &json!({ "value": other }))
        .await
        .result
        .unwrap();
    assert_eq!(back, other);

    // An omitted option is none.
    let mut omitted = everything();
    omitted.as_object_mut().unwrap().remove("maybe");
    let back = runtime
        .invoke("echo.echo", &json!({ "value": omitted }))
        .await
        .result
        .unwrap();
    assert_eq!(back["maybe"], Value::Null);

    // A function's own result: ok is the value, err is a plugin error.
    assert_eq!(
        runtime
            .invoke("echo.check", &json!({ "ok": true, "message": "yes" }))
            .await
            .result
            .unwrap(),
        json!("yes")
    );
    match runtime
        .invoke("echo.check", &json!({ "ok": false, "message": "no" }))
        .await
        .result
    {
        Err(CallError::PluginError { error }) => assert_eq!(serde_json::Value::from(&error), json!("no")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_are_refused_naming_the_field() {
    let data = Scratch::new("badargs");
    let runtime = loaded(&data, &[guest("echo")]).await;
    let with = |path: &[&str], v: Value| {
        let mut value = everything();
        let mut at = &mut value;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = v;
        json!({ "value": value })
    };
    let cases = [
        (with(&["count"], json!("12")), "value.count", "expected an integer"),
        (with(&["count"], json!(-1)), "value.count", "out of range"),
        (with(&["small"], json!(200)), "value.small", "out of range"),
        (with(&["ratio"], json!(null)), "value.ratio", "expected a number"),
        (
            with(&["initial"], json!("ab")),
            "value.initial",
            "exactly one character",
        ),
        (
            with(&["color"], json!("purple")),
            "value.color",
            "not one of red, green, blue",
        ),
        (with(&["perms"], json!(["sudo"])), "value.perms", "not a flag"),
        (with(&["shape"], json!({ "hexagon": 1 })), "value.shape", "unknown case"),
        (with(&["shape"], json!("circle")), "value.shape", "needs a value"),
        (
            with(&["shape"], json!({ "polygon": [{ "x": 1, "y": "2" }] })),
            "value.shape.polygon[0].y",
            "expected a number",
        ),
        (with(&["tags"], json!(["a", 2])), "value.tags[1]", "expected a string"),
        (with(&["pair"], json!(["a"])), "value.pair", "expected 2 items"),
        (with(&["outcome"], json!({ "maybe": 1 })), "value.outcome", "ok"),
        (with(&["surprise"], json!(1)), "value.surprise", "unknown field"),
        (json!({ "value": 1 }), "value", "expected an object"),
        (json!({}), "value", "required argument is missing"),
        (
            json!({ "value": everything(), "extra": 1 }),
            "extra",
            "unknown argument",
        ),
        (json!([1, 2]), "(arguments)", "expected an object"),
    ];
    for (args, field, message) in cases {
        match runtime.invoke("echo.echo", &args).await.result {
            Err(CallError::InvalidInput { field: f, message: m }) => {
                assert_eq!(f, field, "for {args}");
                assert!(m.contains(message), "{m:?} should say {message:?}");
            }
            other => panic!("{args} should be invalid_input at {field}, got {other:?}"),
        }
    }
    let mut missing = everything();
    missing.as_object_mut().unwrap().remove("name");
    match runtime.invoke("echo.echo", &json!({ "value": missing })).await.result {
        Err(CallError::InvalidInput { field, .. }) => assert_eq!(field, "value.name"),
        other => panic!("{other:?}"),
    }
    // And after all that, a good call.
    assert!(runtime
        .invoke("echo.echo", &json!({ "value": everything() }))
        .await
        .result
        .is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tools_and_path_tricks_are_not_found() {
    let data = Scratch::new("notfound");
    let runtime = loaded(&data, &[guest("echo")]).await;
    for name in [
        "echo.nope",
        "nope.echo",
        "../echo.echo",
        "echo",
        "",
        "echo.echo.echo",
        "ECHO.echo",
    ] {
        assert!(
            matches!(
                runtime.invoke(name, &json!({})).await.result,
                Err(CallError::NotFound { .. })
            ),
            "{name:?}"
        );
    }
    // Both name forms reach the same tool.
    let args = json!({ "ok": true, "message": "m" });
    assert_eq!(runtime.invoke("echo_check", &args).await.result.unwrap(), json!("m"));
}

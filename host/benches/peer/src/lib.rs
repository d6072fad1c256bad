//! `POST {"ok": bool, "message": string}` → `{"result": message}` (200), or
//! the message as an error (502), like the echo test component's `check`.

use std::io::{Read as _, Write as _};

use serde_json::{json, Value};
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasip2::http::proxy::export!(PeerEcho);

struct PeerEcho;

fn check(args: &Value) -> (u16, Value) {
    match (args["ok"].as_bool(), args["message"].as_str()) {
        (Some(true), Some(message)) => (200, json!({ "result": message })),
        (Some(false), Some(message)) => (502, json!({ "error": message })),
        _ => (422, json!({ "error": "expected {\"ok\": bool, \"message\": string}" })),
    }
}

impl wasip2::exports::http::incoming_handler::Guest for PeerEcho {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let mut body = Vec::new();
        if let Ok(incoming) = request.consume() {
            if let Ok(mut stream) = incoming.stream() {
                let _ = stream.read_to_end(&mut body);
            }
        }
        let args: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (status, reply) = check(&args);
        let headers = Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())])
            .expect("a valid header");
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(status);
        let body = response.body().expect("the body, once");
        ResponseOutparam::set(out, Ok(response));
        let mut stream = body.write().expect("the stream, once");
        let _ = stream.write_all(&serde_json::to_vec(&reply).unwrap_or_default());
        let _ = stream.flush();
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

//! Prints the REST API's OpenAPI 3.1 document, as `GET /openapi.json`
//! serves it. The copy in the repository is regenerated with
//! `cargo run -p toolhost --example openapi > host/openapi.json`
//! (tests/tests/openapi.rs fails while it differs from what the host serves).

fn main() {
    print!("{}", toolhost::server::api::openapi::to_json());
}

//! `sample-upstreams [DATA_DIR] [ADDR]`: serve the SAMPLE CRM, ERP and
//! carrier APIs (default: ./data-upstreams on 127.0.0.1:9400).

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "data-upstreams".into());
    let addr: SocketAddr = args.next().unwrap_or_else(|| "127.0.0.1:9400".into()).parse()?;
    let (addr, task) = sample_upstreams::start(std::path::Path::new(&dir), addr, Default::default()).await?;
    println!("sample upstreams listening on http://{addr}");
    task.await?;
    Ok(())
}

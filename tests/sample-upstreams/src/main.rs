//! `sample-upstreams [DATA_DIR] [ADDR] [GRANTS_FILE]`: serve the SAMPLE CRM,
//! ERP and carrier APIs (default: ./data-upstreams on 127.0.0.1:9400). With
//! GRANTS_FILE, also write there the toolhost grants (the `[plugins.*]`
//! tables) that let the reference connectors reach them, for scripts that
//! bind port 0 and cannot know the address in advance.

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "data-upstreams".into());
    let addr: SocketAddr = args.next().unwrap_or_else(|| "127.0.0.1:9400".into()).parse()?;
    let grants = args.next();
    let keys = sample_upstreams::Keys::default();
    let (addr, task) = sample_upstreams::start(std::path::Path::new(&dir), addr, keys.clone()).await?;
    if let Some(file) = grants {
        let config = sample_upstreams::scenario::toolhost_config(addr, "/nordpost/v2", &keys.nordpost);
        std::fs::write(&file, config)?;
    }
    println!("sample upstreams listening on http://{addr}");
    task.await?;
    Ok(())
}

//! `sample-upstreams [DATA_DIR] [ADDR] [GRANTS_FILE]`: serve the SAMPLE CRM,
//! ERP, carrier and voucher ledger APIs. See `--help`.

use std::net::SocketAddr;

const HELP: &str = "\
sample-upstreams: SAMPLE vendor systems for toolhost's demo and tests
(a CRM, an ERP, two carriers' tracking APIs and a voucher ledger), over HTTP
on one port, with a seeded store. Not part of toolhost.

USAGE:
    sample-upstreams [DATA_DIR] [ADDR] [GRANTS_FILE]

ARGS:
    DATA_DIR     where the systems keep their data (default: ./data-upstreams;
                 seeded on first use)
    ADDR         where to listen (default: 127.0.0.1:9400; port 0 picks one)
    GRANTS_FILE  also write there the toolhost configuration (the [plugins.*]
                 grants with the sample credentials, the late-parcel
                 workflow's grant and the voucher approval rule) that lets
                 the reference connectors reach these systems

FAULTS (on the same port):
    curl -X POST ADDR/faults -d '{\"fault\":\"fail\",\"path\":\"/ledger/\",\"times\":2}' \\
         -H 'content-type: application/json'
        the next 2 requests whose path contains /ledger/ answer 503 (a
        trailing $ in \"path\" anchors it at the path's end);
        \"hang\" never answers them (504 after 120 s), \"hang-after\" handles
        them and then withholds the answer
    curl ADDR/faults            what is armed, how many requests were seen
    curl -X DELETE ADDR/faults  disarm everything, release hung requests
";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(flag) = args.iter().find(|a| a.starts_with('-')) {
        if flag == "-h" || flag == "--help" {
            print!("{HELP}");
            return Ok(());
        }
        anyhow::bail!("unknown option {flag}; see sample-upstreams --help");
    }
    anyhow::ensure!(args.len() <= 3, "too many arguments; see sample-upstreams --help");
    let mut args = args.into_iter();
    let dir = args.next().unwrap_or_else(|| "data-upstreams".into());
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:9400".into())
        .parse()
        .map_err(|e| anyhow::anyhow!("ADDR must be like 127.0.0.1:9400: {e}"))?;
    let dir = std::path::Path::new(&dir);
    let started = match args.next() {
        Some(grants) => sample_upstreams::start_with_grants(dir, addr, grants.as_ref()).await?,
        None => sample_upstreams::start(dir, addr, sample_upstreams::Keys::default()).await?,
    };
    println!("sample upstreams listening on http://{}", started.addr);
    started.task.await?;
    Ok(())
}

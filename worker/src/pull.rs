//! Hosting of the worker's own choosing (`--host-collective NAME`, `dualrig-worker host ROOT…`): every
//! [`PULL_INTERVAL`] the worker lists each collective's blobs and adds the roots it was given, fetches
//! the ones its store lacks through the coordinator's Get (signed as the worker's account, which must
//! be a member of a collective whose blobs it pulls: they are gated), checks every byte against the
//! root while the store's atomic put writes it, and reports what it stored in its Holdings. The
//! coordinator takes those as claims and challenges them; a passed challenge makes the worker a
//! verified holder.

use std::sync::Arc;
use std::time::Duration;

use dualrig_proto::access::sign_get;
use dualrig_proto::chunk_reader::ChunkReader;
use dualrig_proto::identity::Identity;
use dualrig_proto::proof::slice::verified_reader;
use dualrig_proto::v1::coordinator_client::CoordinatorClient;
use dualrig_proto::v1::{AccountRequest, CollectiveRequest, GetRequest, HelloRequest, get_chunk};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::coordinators::Coordinators;
use crate::hosting::Hosting;

/// Time between passes over the hosted collectives.
pub const PULL_INTERVAL: Duration = Duration::from_secs(5);

/// Pulls the blobs a worker chose to host: whole collectives, and single blobs by root.
#[derive(Debug)]
pub struct Puller {
    identity: Arc<Identity>,
    hosting: Arc<Hosting>,
    coordinators: Arc<Coordinators>,
    names: Vec<String>,
    roots: Vec<[u8; 32]>,
}

impl Puller {
    /// A puller of collectives `names` and blobs `roots` (hex; one that does not parse is left out
    /// with a warning, though the settings refuse such roots before a worker starts).
    pub fn new(
        identity: Arc<Identity>,
        hosting: Arc<Hosting>,
        coordinators: Arc<Coordinators>,
        names: Vec<String>,
        roots: &[String],
    ) -> Self {
        let roots = roots
            .iter()
            .filter_map(|r| {
                dualrig_proto::proof::parse_root(r)
                    .inspect_err(|why| warn!(root = %r, %why, "not hosting it"))
                    .ok()
            })
            .collect();
        Self {
            identity,
            hosting,
            coordinators,
            names,
            roots,
        }
    }

    /// Runs pass after pass; never returns (and does nothing when nothing is hosted by choice).
    pub async fn pull_forever(self) {
        if self.names.is_empty() && self.roots.is_empty() {
            return std::future::pending().await;
        }
        loop {
            // Each pass through the coordinator the worker serves now, so a pass after a switch
            // pulls through the new one.
            let mut api = self.coordinators.client();
            for name in &self.names {
                if let Err(why) = self.pull(&mut api, name).await {
                    warn!(collective = %name, %why, "collective not pulled");
                }
            }
            for root in &self.roots {
                if let Err(why) = self.pull_missing(&mut api, *root).await {
                    warn!(blob = %hex::encode(root), %why, "blob not pulled");
                }
            }
            tokio::time::sleep(PULL_INTERVAL).await;
        }
    }

    /// One pass over collective `name`.
    async fn pull(&self, api: &mut CoordinatorClient<Channel>, name: &str) -> Result<(), String> {
        let me = self.identity.id();
        let account = api
            .account(AccountRequest {
                account: me.as_bytes().to_vec(),
            })
            .await
            .map_err(|s| s.message().to_owned())?
            .into_inner();
        let member = account
            .collective_stakes
            .iter()
            .any(|s| s.collective == name && s.release_round == 0);
        if !member {
            return Err(format!(
                "this worker's account {me} is not a member; join with `dualrig --key DATA_DIR/worker.key collective join {name}`"
            ));
        }
        let mut page_token = Vec::new();
        loop {
            let page = api
                .collective(CollectiveRequest {
                    name: name.to_owned(),
                    page_token,
                    page_size: 0,
                })
                .await
                .map_err(|s| s.message().to_owned())?
                .into_inner();
            for root in &page.roots {
                let Ok(root) = <[u8; 32]>::try_from(root.as_slice()) else {
                    continue;
                };
                if let Err(why) = self.pull_missing(api, root).await {
                    warn!(collective = %name, blob = %hex::encode(root), %why, "blob not pulled")
                }
            }
            if page.next_page_token.is_empty() {
                return Ok(());
            }
            page_token = page.next_page_token;
        }
    }

    /// Fetches blob `root` unless the store has it.
    async fn pull_missing(
        &self,
        api: &mut CoordinatorClient<Channel>,
        root: [u8; 32],
    ) -> Result<(), String> {
        if self
            .hosting
            .store()
            .get(&blake3::Hash::from_bytes(root))
            .is_some()
        {
            return Ok(());
        }
        self.fetch(api, root).await
    }

    /// Fetches blob `root` whole, verified against the root as it streams into the store.
    async fn fetch(
        &self,
        api: &mut CoordinatorClient<Channel>,
        root: [u8; 32],
    ) -> Result<(), String> {
        let hello = api
            .hello(HelloRequest {
                worker_id: self.identity.id().as_bytes().to_vec(),
                for_get: true,
            })
            .await
            .map_err(|s| s.message().to_owned())?
            .into_inner();
        let nonce: [u8; 32] = hello
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| format!("Get nonce is {} bytes, not 32", hello.nonce.len()))?;
        let request = GetRequest {
            root: root.to_vec(),
            start: 0,
            end: None,
            exclude: Vec::new(),
            auth: Some(sign_get(&self.identity, &nonce, &root, 0, None)),
            ..GetRequest::default()
        };
        let mut stream = api
            .get(request)
            .await
            .map_err(|s| s.message().to_owned())?
            .into_inner();
        let header = match stream.message().await.map_err(|s| s.message().to_owned())? {
            Some(dualrig_proto::v1::GetChunk {
                part: Some(get_chunk::Part::Header(h)),
            }) => h,
            _ => return Err("the answer did not start with a header".into()),
        };
        let size = header.size;
        let hash = blake3::Hash::from_bytes(root);
        let (tx, rx) = mpsc::channel(16);
        let store = Arc::clone(self.hosting.store());
        let put = tokio::task::spawn_blocking(move || {
            store.put_reader(verified_reader(ChunkReader::new(rx), &hash, 0, size), size)
        });
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    if let Some(get_chunk::Part::Slice(data)) = message.part
                        && tx.send(Ok(data.into())).await.is_err()
                    {
                        break;
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    let _ = tx.send(Err(status.message().to_owned())).await;
                    break;
                }
            }
        }
        drop(tx);
        let info = put
            .await
            .map_err(|e| format!("store task failed: {e}"))?
            .map_err(|e| e.to_string())?;
        if info.root != hash {
            // Cannot happen through the verified reader; kept as the last word on what is stored.
            let _ = self.hosting.store().remove(&info.root);
            return Err(format!("stored bytes hash to {}, not {hash}", info.root));
        }
        info!(blob = %hash, bytes = info.len, "pulled a blob to host");
        crate::metrics::blob("stored");
        self.hosting.report_added(&info).await;
        Ok(())
    }
}

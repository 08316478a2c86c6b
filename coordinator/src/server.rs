//! Assembles the coordinator: its identity, the gRPC router (dualrig.v1, health, reflection) with message
//! limits raised for segments, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use dualrig_proto::identity::Identity;
use dualrig_proto::v1::coordinator_server::CoordinatorServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::Config;
use crate::error::StartError;
use crate::pool::WorkerPool;
use crate::service::CoordinatorService;

/// File in the data dir that holds the address the coordinator is serving on.
pub const ADDR_FILE: &str = "coordinator.addr";

/// A coordinator bound to its listener, ready to serve.
#[derive(Debug)]
pub struct Coordinator {
    listener: TcpListener,
    service: CoordinatorService,
    pool: Arc<WorkerPool>,
    identity: Arc<Identity>,
}

impl Coordinator {
    /// Prepares the data dir, loads or creates the coordinator's key, and binds `config.listen`.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        dualrig_media::init();
        std::fs::create_dir_all(config.scratch_dir()).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        clean_scratch(&config);
        let identity = Arc::new(Identity::load_or_create(
            &config.data_dir.join("coordinator.key"),
        )?);
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let pool = Arc::new(WorkerPool::new());
        let service =
            CoordinatorService::new(Arc::clone(&identity), Arc::new(config), Arc::clone(&pool));
        Ok(Self {
            listener,
            service,
            pool,
            identity,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn pool(&self) -> Arc<WorkerPool> {
        Arc::clone(&self.pool)
    }

    pub fn id(&self) -> dualrig_proto::identity::PublicId {
        self.identity.id()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<CoordinatorServer<CoordinatorService>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(dualrig_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let pool = Arc::clone(&self.pool);
        let shutdown = async move {
            shutdown.await;
            pool.close();
        };
        let api = CoordinatorServer::new(self.service)
            .max_decoding_message_size(dualrig_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(dualrig_proto::MAX_MESSAGE_BYTES);
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(api)
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), shutdown)
            .await?;
        Ok(())
    }
}

/// Binds and serves `config` until `shutdown`; the convenience entry point for the binary.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let config_addr = config.listen;
    let addr_file = config.data_dir.join(ADDR_FILE);
    let coordinator = Coordinator::bind(config).await?;
    let addr = coordinator
        .local_addr()
        .map_err(|source| StartError::Listen {
            addr: config_addr,
            source,
        })?;
    // Scripts and operators that asked for port 0 learn the real address here.
    std::fs::write(&addr_file, format!("{addr}\n")).map_err(|source| StartError::DataDir {
        path: addr_file.clone(),
        source,
    })?;
    tracing::info!(%addr, id = %coordinator.id(), "coordinator listening");
    coordinator.serve(shutdown).await
}

/// Staged files from a previous run are never needed again.
fn clean_scratch(config: &Config) {
    if let Ok(entries) = std::fs::read_dir(config.scratch_dir()) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

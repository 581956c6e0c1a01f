//! A whole node as one value: the chain service, the network, range sync and the HTTP
//! servers, started together from a [`NodeConfig`] and stopped together.
//!
//! `quasar node` is one [`Node`] until a signal; `quasar dev` and the multi-node tests
//! run several in one process. Each owns its parts (its datadir, its keys, its caches):
//! two nodes share nothing but the tokio runtime they were started on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::accel::aggregate::PubkeyAggregator;
use crate::api::{metrics::NodeMetrics, serve_api, serve_metrics, ApiContext, HttpServer};
use crate::chain::pipeline::ImportError;
use crate::chain::pipeline::ImportOptions;
use crate::chain::service::{ChainHandle, ChainService};
use crate::net::service::{NetworkConfig, NetworkHandle, NetworkService};
use crate::net::NetError;
use crate::sync::checkpoint::{checkpoint_sync, CheckpointConfig, CheckpointError};
use crate::sync::{Backfill, RangeSync, SyncConfig};
use crate::transition::ChainConfig;
use crate::types::Preset;

/// Everything a node is started from.
pub struct NodeConfig {
    /// Where the chain (`db/`, `cache/`) and the network key (`network/`) live.
    pub datadir: PathBuf,
    /// The anchor state's SSZ (genesis); needed for a new datadir, unless it is anchored
    /// by `checkpoint_sync_url` (then, when given, it names the preset and the chain).
    pub genesis: Option<Vec<u8>>,
    /// Anchor a new datadir at the finalized checkpoint of this Beacon API (another
    /// node's), then backfill the older blocks. Ignored (logged) for a datadir that holds a
    /// chain already: its anchor stays.
    pub checkpoint_sync_url: Option<String>,
    /// The chain config (`None`: the preset's built-in one).
    pub chain_config: Option<ChainConfig>,
    pub import: ImportOptions,
    /// The pubkey aggregation backend of the signature batches.
    pub aggregator: Box<dyn PubkeyAggregator>,
    /// The network (its `datadir` is the node's).
    pub network: NetworkConfig,
    pub sync: SyncConfig,
    /// Serve the Beacon API here (port 0: any free port).
    pub http: Option<SocketAddr>,
    /// Serve `/metrics` here.
    pub metrics: Option<SocketAddr>,
}

impl NodeConfig {
    /// A node on 127.0.0.1 (any free ports, no QUIC, no discovery), no HTTP servers:
    /// tests and `quasar dev` set what they need on top.
    pub fn local(
        datadir: PathBuf,
        genesis: Option<Vec<u8>>,
        aggregator: Box<dyn PubkeyAggregator>,
    ) -> Self {
        NodeConfig {
            network: NetworkConfig::local(datadir.clone()),
            datadir,
            genesis,
            checkpoint_sync_url: None,
            chain_config: None,
            import: ImportOptions::default(),
            aggregator,
            sync: SyncConfig::default(),
            http: None,
            metrics: None,
        }
    }
}

/// What `--network` names: a preset's built-in config, or a folder with a consensus-specs
/// `config.yaml` (its `PRESET_BASE` names the preset) and, when present, `genesis.ssz` /
/// `genesis.ssz_snappy` (Lighthouse's `--testnet-dir` layout).
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    pub preset: Preset,
    pub config: ChainConfig,
    pub genesis: Option<Vec<u8>>,
}

impl NetworkSpec {
    /// `minimal`, `mainnet` or a folder.
    pub fn load(arg: &str) -> Result<NetworkSpec, NodeError> {
        let bad = |reason: String| NodeError::Network {
            arg: arg.to_string(),
            reason,
        };
        match arg {
            "minimal" => return Ok(Self::named(Preset::Minimal)),
            "mainnet" => return Ok(Self::named(Preset::Mainnet)),
            _ => {}
        }
        let dir = std::path::Path::new(arg);
        if !dir.is_dir() {
            return Err(bad(
                "not `minimal`, `mainnet` or a folder with config.yaml".into()
            ));
        }
        let yaml = std::fs::read_to_string(dir.join("config.yaml"))
            .map_err(|e| bad(format!("config.yaml: {e}")))?;
        let preset = yaml
            .lines()
            .find_map(|l| l.trim().strip_prefix("PRESET_BASE:"))
            .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"'))
            .ok_or_else(|| bad("config.yaml has no PRESET_BASE".into()))?;
        let preset = match preset {
            "minimal" => Preset::Minimal,
            "mainnet" => Preset::Mainnet,
            other => {
                return Err(bad(format!(
                    "PRESET_BASE {other:?} is not minimal or mainnet"
                )))
            }
        };
        let config = ChainConfig::from_yaml(&yaml).map_err(|e| bad(format!("config.yaml: {e}")))?;
        let genesis = if dir.join("genesis.ssz").is_file() {
            Some(
                std::fs::read(dir.join("genesis.ssz"))
                    .map_err(|e| bad(format!("genesis.ssz: {e}")))?,
            )
        } else if dir.join("genesis.ssz_snappy").is_file() {
            use crate::types::ssz_static::{decompress_snappy, MAX_DECOMPRESSED_LEN};
            let raw = std::fs::read(dir.join("genesis.ssz_snappy"))
                .map_err(|e| bad(format!("genesis.ssz_snappy: {e}")))?;
            Some(
                decompress_snappy(&raw, MAX_DECOMPRESSED_LEN)
                    .map_err(|e| bad(format!("genesis.ssz_snappy: {e}")))?,
            )
        } else {
            None
        };
        Ok(NetworkSpec {
            preset,
            config,
            genesis,
        })
    }

    fn named(preset: Preset) -> NetworkSpec {
        NetworkSpec {
            preset,
            config: crate::chain::any::config_of(preset),
            genesis: None,
        }
    }

    /// The preset the datadir (else the genesis state) is of must be this one.
    pub fn check(
        &self,
        datadir: &std::path::Path,
        genesis: Option<&[u8]>,
    ) -> Result<(), NodeError> {
        let have = match crate::chain::any::datadir_preset(datadir)? {
            Some(p) => Some((p, "the datadir holds")),
            None => genesis
                .map(crate::chain::any::genesis_preset)
                .transpose()?
                .map(|p| (p, "the genesis state is")),
        };
        match have {
            Some((p, what)) if p != self.preset => Err(NodeError::Network {
                arg: self.preset.name().to_string(),
                reason: format!("{what} a {} chain", p.name()),
            }),
            _ => Ok(()),
        }
    }
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Chain(#[from] ImportError),
    #[error("network: {0}")]
    Net(#[from] NetError),
    #[error("--network {arg}: {reason}")]
    Network { arg: String, reason: String },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{what}: {source}")]
    Serve {
        what: &'static str,
        source: crate::api::ServeError,
    },
}

/// A running node.
pub struct Node {
    service: ChainService,
    network: NetworkService,
    sync: RangeSync,
    /// Backfill below a checkpoint anchor (`None`: anchored at genesis).
    backfill: Option<Backfill>,
    chain: ChainHandle,
    net: NetworkHandle,
    api: Option<HttpServer>,
    metrics: Option<HttpServer>,
}

impl Node {
    /// Open the chain, start the network, range sync and the servers, on the current tokio
    /// runtime (the chain opens on this thread: RocksDB and the replay to the head).
    pub async fn start(cfg: NodeConfig) -> Result<Node, NodeError> {
        let backend = cfg.aggregator.name();
        if let Some(url) = &cfg.checkpoint_sync_url {
            anchor_at_checkpoint(&cfg.datadir, url, cfg.genesis.as_deref()).await?;
        }
        let service = ChainService::open_with_config(
            &cfg.datadir,
            cfg.genesis.as_deref(),
            cfg.chain_config.clone(),
            cfg.import,
            cfg.aggregator,
        )?;
        let chain = service.handle();
        let chain_cfg = cfg
            .chain_config
            .unwrap_or_else(|| crate::chain::any::config_of(chain.preset()));
        let mut net_cfg = cfg.network;
        net_cfg.datadir = cfg.datadir.clone();
        let network = match NetworkService::start(net_cfg, chain.clone(), chain_cfg.clone()).await {
            Ok(n) => n,
            Err(e) => {
                service.shutdown();
                return Err(e.into());
            }
        };
        let net = network.handle();
        let backfill = Backfill::start(net.clone(), chain.clone(), &cfg.sync);
        let sync = RangeSync::start(net.clone(), chain.clone(), cfg.sync);
        let mut node = Node {
            service,
            network,
            sync,
            backfill: None,
            chain,
            net,
            api: None,
            metrics: None,
        };
        match backfill {
            Ok(b) => node.backfill = b,
            Err(e) => {
                let _ = node.shutdown().await;
                return Err(e.into());
            }
        }
        if let Some(addr) = cfg.http {
            let ctx = ApiContext::new(node.chain.clone(), Some(node.net.clone()), chain_cfg);
            match serve_api(ctx, addr).await {
                Ok(s) => node.api = Some(s),
                Err(source) => {
                    let _ = node.shutdown().await;
                    return Err(NodeError::Serve {
                        what: "--http",
                        source,
                    });
                }
            }
        }
        if let Some(addr) = cfg.metrics {
            let m = NodeMetrics::new(node.chain.clone(), Some(node.net.clone()), &backend)
                .with_sync(node.sync.subscribe());
            match serve_metrics(Arc::new(m), addr).await {
                Ok(s) => node.metrics = Some(s),
                Err(source) => {
                    let _ = node.shutdown().await;
                    return Err(NodeError::Serve {
                        what: "--metrics",
                        source,
                    });
                }
            }
        }
        Ok(node)
    }

    pub fn chain(&self) -> &ChainHandle {
        &self.chain
    }

    pub fn net(&self) -> &NetworkHandle {
        &self.net
    }

    pub fn sync(&self) -> &RangeSync {
        &self.sync
    }

    /// Backfill below a checkpoint anchor (`None` for a chain anchored at genesis).
    pub fn backfill(&self) -> Option<&Backfill> {
        self.backfill.as_ref()
    }

    /// The Beacon API's bound address, when serving.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().map(HttpServer::local_addr)
    }

    /// The metrics server's bound address, when serving.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(HttpServer::local_addr)
    }

    /// Stop in order: range sync (the batch in flight finishes), the servers, the network
    /// (goodbye to peers), then the chain (its last writes flushed). Returns how range sync
    /// ended.
    pub async fn shutdown(self) -> Result<(), ImportError> {
        let backfilled = match self.backfill {
            Some(b) => b.stop().await,
            None => Ok(()),
        };
        let synced = self.sync.stop().await;
        for s in [self.api, self.metrics].into_iter().flatten() {
            s.shutdown().await;
        }
        self.network.shutdown().await;
        drop(self.net);
        drop(self.chain);
        let service = self.service;
        // The chain threads join; keep that off the runtime's worker.
        let _ = tokio::task::spawn_blocking(move || service.shutdown()).await;
        synced.and(backfilled)
    }
}

/// Anchor a new datadir at the finalized checkpoint of the Beacon API at `url` (see
/// [`crate::sync::checkpoint`]); a datadir holding a chain keeps its anchor. `genesis`,
/// when given, names the preset and the chain the checkpoint must be of.
async fn anchor_at_checkpoint(
    datadir: &std::path::Path,
    url: &str,
    genesis: Option<&[u8]>,
) -> Result<(), NodeError> {
    if crate::chain::any::datadir_preset(datadir)?.is_some() {
        tracing::info!(
            url,
            "the datadir holds a chain: --checkpoint-sync-url ignored, its anchor stays"
        );
        return Ok(());
    }
    let preset = genesis.map(crate::chain::any::genesis_preset).transpose()?;
    tracing::info!(
        url,
        "checkpoint sync: fetching the finalized state and block"
    );
    let a = checkpoint_sync(
        CheckpointConfig::new(url),
        datadir,
        preset,
        genesis.map(<[u8]>::to_vec),
    )
    .await?;
    tracing::info!(
        slot = a.anchor.slot,
        block_slot = a.block_slot,
        root = %crate::chain::pipeline::hex(&a.anchor.root),
        "checkpoint sync: anchored at the finalized checkpoint"
    );
    Ok(())
}

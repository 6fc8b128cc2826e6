//! The option table: every option Stele recognises, listed once with its field, type,
//! EventStoreDB name, other spellings, default and whether Stele acts on it. The
//! [`Options`] struct, the [`OPTIONS`] rows used by the parser and `--help`, and the code that
//! fills one from the other are all generated from this one list.
//!
//! Adding an option is adding a row. When Stele starts acting on an option, change its
//! status from `NotYet` to `Acted` in the same change.
//!
//! Names and defaults are EventStoreDB's (23.10, the last version before KurrentDB renamed
//! several options); KurrentDB's newer names are accepted as aliases (`NodePort` for
//! `HttpPort`, `ReplicationIp` for `IntIp`, ...).

use std::net::IpAddr;
use std::path::PathBuf;

use super::error::ConfigError;
use super::resolve::Resolver;
use super::spec::{OptionSpec, Status};
use super::value::{HostPort, LogLevel, OptionValue, RunProjections};

macro_rules! option_table {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $ty:ty = $name:literal $(| $alias:literal)*, default $default:literal, $status:ident;
    )+) => {
        /// A node's configuration, after command line, environment, config file and defaults
        /// have been combined. Built by [`parse`](super::parse).
        #[derive(Debug, Clone, PartialEq)]
        pub struct Options {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        /// Every option, in `--help` order.
        pub static OPTIONS: &[OptionSpec] = &[$(
            OptionSpec {
                name: $name,
                aliases: &[$($alias),*],
                default: $default,
                status: Status::$status,
                help: concat!($($doc),+),
                hint: <$ty as OptionValue>::HINT,
                placeholder: <$ty as OptionValue>::PLACEHOLDER,
                is_flag: <$ty as OptionValue>::IS_FLAG,
            },
        )+];

        impl Options {
            pub(super) fn build(resolver: &mut Resolver) -> Result<Options, ConfigError> {
                Ok(Options { $( $field: resolver.value::<$ty>($name)?, )+ })
            }
        }
    };
}

option_table! {
    // Application.

    /// Configuration file (YAML, EventStoreDB's format). Read only when given; there is no
    /// default file.
    config: Option<PathBuf> = "Config", default "", Acted;
    /// Start even if unknown options are set (each is named in a warning).
    allow_unknown_options: bool = "AllowUnknownOptions", default "false", Acted;
    /// Print the effective configuration and exit.
    what_if: bool = "WhatIf", default "false", NotYet;
    /// Disable authentication, authorization and TLS (development only: anyone who reaches
    /// the node can do anything).
    insecure: bool = "Insecure", default "false", Acted;
    /// Run in development mode: a self-signed certificate for localhost, generated at start.
    dev: bool = "Dev", default "false", Acted;
    /// Remove dev certificates and exit.
    remove_dev_certs: bool = "RemoveDevCerts", default "false", NotYet;
    /// Seconds between statistics gathers.
    stats_period_sec: i32 = "StatsPeriodSec", default "30", NotYet;
    /// Threads in the worker pool (0 scales automatically).
    worker_threads: i32 = "WorkerThreads", default "0", NotYet;
    /// Track histograms in the backend.
    enable_histograms: bool = "EnableHistograms", default "false", NotYet;
    /// Log HTTP requests and responses.
    log_http_requests: bool = "LogHttpRequests", default "false", NotYet;
    /// Log failed authentication attempts.
    log_failed_authentication_attempts: bool = "LogFailedAuthenticationAttempts", default "false", NotYet;
    /// Skip the index scan on reads.
    skip_index_scan_on_reads: bool = "SkipIndexScanOnReads", default "false", NotYet;
    /// The maximum size in bytes of one append (all its events together).
    max_append_size: u32 = "MaxAppendSize", default "1048576", Acted;
    /// The maximum size in bytes of one event in an append.
    max_append_event_size: i32 = "MaxAppendEventSize", default "2147483647", Acted;
    /// Disable HTTP caching.
    disable_http_caching: bool = "DisableHttpCaching", default "false", NotYet;
    /// Allow anonymous access to HTTP endpoints.
    allow_anonymous_endpoint_access: bool = "AllowAnonymousEndpointAccess", default "false", NotYet;
    /// Allow anonymous access to streams.
    allow_anonymous_stream_access: bool = "AllowAnonymousStreamAccess", default "false", NotYet;
    /// Allow anonymous access to the gossip endpoint whatever AllowAnonymousEndpointAccess says.
    override_anonymous_endpoint_access_for_gossip: bool = "OverrideAnonymousEndpointAccessForGossip", default "true", NotYet;
    /// Opt out of telemetry. Stele sends no telemetry, so this is always honoured.
    telemetry_optout: bool = "TelemetryOptout", default "false", Acted;
    /// Password of the default admin user.
    default_admin_password: String = "DefaultAdminPassword", default "changeit", NotYet;
    /// Password of the default ops user.
    default_ops_password: String = "DefaultOpsPassword", default "changeit", NotYet;

    // Logging.

    /// Directory for log files. Stele logs to standard output only.
    log: PathBuf = "Log", default "./log", NotYet;
    /// Log level; RUST_LOG, when set, overrides it.
    log_level: LogLevel = "LogLevel", default "Default", Acted;
    /// Console log format (Plain or Json).
    log_console_format: String = "LogConsoleFormat", default "Plain", NotYet;
    /// Maximum size of one log file in bytes.
    log_file_size: i64 = "LogFileSize", default "1073741824", NotYet;
    /// How often to start a new log file.
    log_file_interval: String = "LogFileInterval", default "Day", NotYet;
    /// How many log files to keep.
    log_file_retention_count: i32 = "LogFileRetentionCount", default "31", NotYet;
    /// Do not write log files. Stele writes none, so this is always honoured.
    disable_log_file: bool = "DisableLogFile", default "false", Acted;
    /// Logging configuration file.
    log_config: String = "LogConfig", default "logconfig.json", NotYet;

    // Authentication and authorization.

    /// Authorization type.
    authorization_type: String = "AuthorizationType", default "internal", NotYet;
    /// Authorization configuration file.
    authorization_config: Option<String> = "AuthorizationConfig", default "", NotYet;
    /// Authentication type.
    authentication_type: String = "AuthenticationType", default "internal", NotYet;
    /// Authentication configuration file.
    authentication_config: Option<String> = "AuthenticationConfig", default "", NotYet;

    // Certificates (issue 13). A node without Insecure or Dev needs CertificateFile and
    // CertificatePrivateKeyFile; the Windows certificate store options are recognised so that
    // configuration files load, and are not acted on.

    /// Certificate file: PEM (leaf first, then intermediates) or DER. PKCS #12 is not read.
    certificate_file: Option<PathBuf> = "CertificateFile", default "", Acted;
    /// Private key of the certificate (PEM: PKCS #8, RSA or EC).
    certificate_private_key_file: Option<PathBuf> = "CertificatePrivateKeyFile", default "", Acted;
    /// Password of the certificate file.
    certificate_password: Option<String> = "CertificatePassword", default "", NotYet;
    /// Password of the private key file.
    certificate_private_key_password: Option<String> = "CertificatePrivateKeyPassword", default "", NotYet;
    /// Directory of trusted root certificates (other nodes' and client certificates must chain
    /// to one of them).
    trusted_root_certificates_path: PathBuf = "TrustedRootCertificatesPath", default "/etc/ssl/certs", Acted;
    /// Common name other nodes' certificates must have (`*.` wildcards allowed); empty means
    /// this node's own certificate's common name.
    certificate_reserved_node_common_name: Option<String> = "CertificateReservedNodeCommonName", default "", Acted;
    /// Certificate store location.
    certificate_store_location: Option<String> = "CertificateStoreLocation", default "", NotYet;
    /// Certificate store name.
    certificate_store_name: Option<String> = "CertificateStoreName", default "", NotYet;
    /// Certificate subject name.
    certificate_subject_name: Option<String> = "CertificateSubjectName", default "", NotYet;
    /// Certificate thumbprint.
    certificate_thumbprint: Option<String> = "CertificateThumbprint", default "", NotYet;
    /// Store of the trusted root certificate.
    trusted_root_certificate_store_name: Option<String> = "TrustedRootCertificateStoreName", default "", NotYet;
    /// Store location of the trusted root certificate.
    trusted_root_certificate_store_location: Option<String> = "TrustedRootCertificateStoreLocation", default "", NotYet;
    /// Subject name of the trusted root certificate.
    trusted_root_certificate_subject_name: Option<String> = "TrustedRootCertificateSubjectName", default "", NotYet;
    /// Thumbprint of the trusted root certificate.
    trusted_root_certificate_thumbprint: Option<String> = "TrustedRootCertificateThumbprint", default "", NotYet;

    // Cluster.

    /// Number of voting nodes in the cluster.
    cluster_size: u32 = "ClusterSize", default "1", Acted;
    /// Priority of this node when choosing a leader (higher is preferred).
    node_priority: i32 = "NodePriority", default "0", Acted;
    /// Discover the other nodes through DNS (ClusterDns) instead of GossipSeed.
    discover_via_dns: bool = "DiscoverViaDns", default "true", Acted;
    /// DNS name whose addresses are the cluster's nodes.
    cluster_dns: String = "ClusterDns", default "fake.dns", Acted;
    /// Gossip port of the nodes found through DNS.
    cluster_gossip_port: u16 = "ClusterGossipPort", default "2113", Acted;
    /// Other nodes to gossip with first: host:port, comma-separated.
    gossip_seed: Vec<HostPort> = "GossipSeed", default "", Acted;
    /// Milliseconds between gossip rounds.
    gossip_interval_ms: u64 = "GossipIntervalMs", default "2000", Acted;
    /// Clock drift in milliseconds allowed between nodes before gossip is rejected.
    gossip_allowed_difference_ms: u64 = "GossipAllowedDifferenceMs", default "60000", Acted;
    /// Timeout in milliseconds of one gossip request.
    gossip_timeout_ms: u64 = "GossipTimeoutMs", default "2500", Acted;
    /// Gossip even when the cluster has a single node (EventStoreDB 20 and earlier).
    gossip_on_single_node: bool = "GossipOnSingleNode", default "false", NotYet;
    /// This node is a read-only replica: it never votes nor accepts writes.
    read_only_replica: bool = "ReadOnlyReplica", default "false", Acted;
    /// This node is an archiver (KurrentDB).
    archiver: bool = "Archiver", default "false", NotYet;
    /// Let more nodes than ClusterSize join as clones.
    unsafe_allow_surplus_nodes: bool = "UnsafeAllowSurplusNodes", default "false", NotYet;
    /// Seconds a dead node stays in gossip.
    dead_member_removal_period_sec: i32 = "DeadMemberRemovalPeriodSec", default "1800", Acted;
    /// Timeout in milliseconds of election messages.
    leader_election_timeout_ms: u64 = "LeaderElectionTimeoutMs", default "1000", Acted;
    /// Nodes that must acknowledge a commit (-1: a majority). Stele always waits for a
    /// majority of the voters (raft's quorum); another value is refused at start.
    commit_count: i32 = "CommitCount", default "-1", Acted;
    /// Nodes that must acknowledge a prepare (-1: a majority). As CommitCount: a majority
    /// of the voters, always.
    prepare_count: i32 = "PrepareCount", default "-1", Acted;
    /// Entries in the stream info cache.
    stream_info_cache_capacity: i32 = "StreamInfoCacheCapacity", default "100000", NotYet;

    // Database.

    /// Directory of the database.
    db: PathBuf = "Db", default "./db", Acted;
    /// Directory of the index (default: inside Db).
    index: Option<PathBuf> = "Index", default "", Acted;
    /// Keep everything in memory; create no files.
    mem_db: bool = "MemDb", default "false", Acted;
    /// Size in bytes of one chunk file.
    chunk_size: u64 = "ChunkSize", default "268435456", Acted;
    /// Minimum flush delay in milliseconds.
    min_flush_delay_ms: f64 = "MinFlushDelayMs", default "2", NotYet;
    /// Do not merge chunks when scavenging.
    disable_scavenge_merging: bool = "DisableScavengeMerging", default "false", NotYet;
    /// Days of scavenge history to keep.
    scavenge_history_max_age: i32 = "ScavengeHistoryMaxAge", default "30", NotYet;
    /// Chunks to cache in memory.
    cached_chunks: i32 = "CachedChunks", default "-1", NotYet;
    /// Bytes of memory for caching chunks.
    chunks_cache_size: Option<i64> = "ChunksCacheSize", default "", NotYet;
    /// Maximum size of a memtable.
    max_mem_table_size: i32 = "MaxMemTableSize", default "1000000", NotYet;
    /// Events to read per candidate on a hash collision.
    hash_collision_read_limit: i32 = "HashCollisionReadLimit", default "100", NotYet;
    /// Transformation applied to the database.
    transform: String = "Transform", default "identity", NotYet;
    /// Create Bloom filters for index files.
    use_index_bloom_filters: bool = "UseIndexBloomFilters", default "true", NotYet;
    /// Entries in each index cache.
    index_cache_size: i32 = "IndexCacheSize", default "0", NotYet;
    /// Skip verifying database file hashes at startup.
    skip_db_verify: bool = "SkipDbVerify", default "false", NotYet;
    /// Write through the file system cache.
    write_through: bool = "WriteThrough", default "false", NotYet;
    /// Unbuffered (direct) I/O.
    unbuffered: bool = "Unbuffered", default "false", NotYet;
    /// Readers opened per chunk.
    chunk_initial_reader_count: i32 = "ChunkInitialReaderCount", default "5", NotYet;
    /// Prepare timeout in milliseconds.
    prepare_timeout_ms: i32 = "PrepareTimeoutMs", default "2000", NotYet;
    /// Commit timeout in milliseconds.
    commit_timeout_ms: i32 = "CommitTimeoutMs", default "2000", NotYet;
    /// Write timeout in milliseconds.
    write_timeout_ms: i32 = "WriteTimeoutMs", default "2000", NotYet;
    /// Do not flush to disk (unsafe on power loss).
    unsafe_disable_flush_to_disk: bool = "UnsafeDisableFlushToDisk", default "false", NotYet;
    /// Ignore hard deletes (unsafe).
    unsafe_ignore_hard_delete: bool = "UnsafeIgnoreHardDelete", default "false", NotYet;
    /// Skip verifying index file hashes.
    skip_index_verify: bool = "SkipIndexVerify", default "false", NotYet;
    /// Depth of the index midpoint cache.
    index_cache_depth: i32 = "IndexCacheDepth", default "16", NotYet;
    /// Reduce the database's stickiness in the file system cache.
    reduce_file_cache_pressure: bool = "ReduceFileCachePressure", default "false", NotYet;
    /// Threads that initialise the database.
    initialization_threads: i32 = "InitializationThreads", default "1", NotYet;
    /// Reader threads (0 scales automatically).
    reader_threads_count: i32 = "ReaderThreadsCount", default "0", NotYet;
    /// Highest index level merged automatically.
    max_auto_merge_index_level: i32 = "MaxAutoMergeIndexLevel", default "2147483647", NotYet;
    /// Write statistics to the database.
    write_stats_to_db: bool = "WriteStatsToDb", default "false", NotYet;
    /// Largest truncation allowed at startup in bytes (-1: no limit).
    max_truncation: i64 = "MaxTruncation", default "268435456", NotYet;
    /// Where statistics are written (File, Stream, StreamAndFile).
    stats_storage: String = "StatsStorage", default "File", NotYet;
    /// Log format version.
    db_log_format: String = "DbLogFormat", default "V2", NotYet;
    /// Bytes for the stream existence filter.
    stream_existence_filter_size: Option<i64> = "StreamExistenceFilterSize", default "", NotYet;
    /// Page size of the scavenge database.
    scavenge_backend_page_size: Option<i32> = "ScavengeBackendPageSize", default "", NotYet;
    /// Bytes of backend cache for scavenging.
    scavenge_backend_cache_size: Option<i64> = "ScavengeBackendCacheSize", default "", NotYet;
    /// Stream hashes remembered when checking collisions.
    scavenge_hash_users_cache_capacity: Option<i32> = "ScavengeHashUsersCacheCapacity", default "", NotYet;

    // gRPC.

    /// Milliseconds between keepalive pings sent by the server.
    keep_alive_interval: i32 = "KeepAliveInterval", default "10000", NotYet;
    /// Milliseconds to wait for a keepalive ping's acknowledgement.
    keep_alive_timeout: i32 = "KeepAliveTimeout", default "10000", NotYet;

    // Interfaces.

    /// IP address of the client interface (HTTP and gRPC).
    node_ip: IpAddr = "NodeIp" | "ExtIp", default "127.0.0.1", Acted;
    /// IP address of the internal interface (replication between nodes).
    int_ip: IpAddr = "IntIp" | "ReplicationIp", default "127.0.0.1", Acted;
    /// Port of the client interface: HTTP and gRPC share it.
    http_port: u16 = "HttpPort" | "NodePort" | "IntHttpPort" | "ExtHttpPort", default "2113", Acted;
    /// Port of the internal interface (replication between nodes).
    int_tcp_port: u16 = "IntTcpPort" | "ReplicationPort", default "1112", Acted;
    /// Port of EventStoreDB's external TCP client protocol, which Stele does not serve.
    ext_tcp_port: u16 = "ExtTcpPort" | "NodeTcpPort", default "1113", NotYet;
    /// Secure internal TCP port (EventStoreDB 20).
    int_secure_tcp_port: Option<u16> = "IntSecureTcpPort", default "", NotYet;
    /// Secure external TCP port (EventStoreDB 20).
    ext_secure_tcp_port: Option<u16> = "ExtSecureTcpPort", default "", NotYet;
    /// Serve EventStoreDB's external TCP client protocol.
    enable_external_tcp: bool = "EnableExternalTcp", default "false", NotYet;
    /// Host this node advertises to other nodes.
    ext_host_advertise_as: Option<String> = "ExtHostAdvertiseAs" | "NodeHostAdvertiseAs", default "", Acted;
    /// Internal host this node advertises to other nodes.
    int_host_advertise_as: Option<String> = "IntHostAdvertiseAs" | "ReplicationHostAdvertiseAs", default "", Acted;
    /// Host advertised to clients in gossip.
    advertise_host_to_client_as: Option<String> = "AdvertiseHostToClientAs", default "", Acted;
    /// HTTP port advertised to clients in gossip (0: HttpPort).
    advertise_http_port_to_client_as: Option<u16> = "AdvertiseHttpPortToClientAs" | "AdvertiseNodePortToClientAs", default "", Acted;
    /// TCP port advertised to clients.
    advertise_tcp_port_to_client_as: Option<u16> = "AdvertiseTcpPortToClientAs", default "", NotYet;
    /// HTTP port advertised to other nodes.
    http_port_advertise_as: Option<u16> = "HttpPortAdvertiseAs" | "NodePortAdvertiseAs", default "", Acted;
    /// Internal TCP port advertised to other nodes.
    int_tcp_port_advertise_as: Option<u16> = "IntTcpPortAdvertiseAs" | "ReplicationTcpPortAdvertiseAs", default "", Acted;
    /// External TCP port advertised.
    ext_tcp_port_advertise_as: Option<u16> = "ExtTcpPortAdvertiseAs" | "NodeTcpPortAdvertiseAs", default "", NotYet;
    /// Heartbeat interval in milliseconds between nodes.
    int_tcp_heartbeat_interval: u64 = "IntTcpHeartbeatInterval" | "ReplicationHeartbeatInterval", default "700", NotYet;
    /// Heartbeat timeout in milliseconds between nodes.
    int_tcp_heartbeat_timeout: u64 = "IntTcpHeartbeatTimeout" | "ReplicationHeartbeatTimeout", default "700", NotYet;
    /// Heartbeat interval in milliseconds of external TCP clients.
    ext_tcp_heartbeat_interval: i32 = "ExtTcpHeartbeatInterval" | "NodeHeartbeatInterval", default "2000", NotYet;
    /// Heartbeat timeout in milliseconds of external TCP clients.
    ext_tcp_heartbeat_timeout: i32 = "ExtTcpHeartbeatTimeout" | "NodeHeartbeatTimeout", default "1000", NotYet;
    /// Disable TLS on the internal TCP interface.
    disable_internal_tcp_tls: bool = "DisableInternalTcpTls", default "false", NotYet;
    /// Disable TLS on the external TCP interface.
    disable_external_tcp_tls: bool = "DisableExternalTcpTls", default "false", NotYet;
    /// Accept local connections on a UNIX domain socket.
    enable_unix_socket: bool = "EnableUnixSocket", default "false", NotYet;
    /// Pending send bytes allowed before a connection is closed.
    connection_pending_send_bytes_threshold: i32 = "ConnectionPendingSendBytesThreshold", default "10485760", NotYet;
    /// Pending operations allowed before a connection is closed.
    connection_queue_size_threshold: i32 = "ConnectionQueueSizeThreshold", default "50000", NotYet;
    /// Client connections (HTTP and gRPC) open at once; at the limit the connection idle
    /// longest is closed to make room, and a new one is refused only when all are busy.
    /// Stele's own option: EventStoreDB has none.
    max_client_connections: u32 = "MaxClientConnections", default "4096", Acted;
    /// Milliseconds a new client connection has to complete its first request's headers.
    /// Stele's own option (Kestrel's RequestHeadersTimeout, which EventStoreDB serves with).
    client_header_read_timeout_ms: u64 = "ClientHeaderReadTimeoutMs", default "30000", Acted;
    /// Milliseconds a client connection may stay with no request in flight before it is
    /// closed. Stele's own option (Kestrel's KeepAliveTimeout, which EventStoreDB serves with).
    client_idle_timeout_ms: u64 = "ClientIdleTimeoutMs", default "130000", Acted;
    /// Disable the admin UI. Stele has no UI yet, so this is always honoured.
    disable_admin_ui: bool = "DisableAdminUi", default "false", Acted;
    /// Disable statistics on HTTP.
    disable_stats_on_http: bool = "DisableStatsOnHttp", default "false", NotYet;
    /// Disable gossip on HTTP.
    disable_gossip_on_http: bool = "DisableGossipOnHttp", default "false", NotYet;
    /// Trust authentication done by an intermediary.
    enable_trusted_auth: bool = "EnableTrustedAuth", default "false", NotYet;
    /// Serve the AtomPub HTTP API.
    enable_atom_pub_over_http: bool = "EnableAtomPubOverHttp", default "false", NotYet;

    // Projections.

    /// Which projections run.
    run_projections: RunProjections = "RunProjections", default "None", Acted;
    /// Start the built-in system projections.
    start_standard_projections: bool = "StartStandardProjections", default "false", Acted;
    /// Threads for projections.
    projection_threads: i32 = "ProjectionThreads", default "3", Acted;
    /// Minutes an idle query lives.
    projections_query_expiry: i32 = "ProjectionsQueryExpiry", default "5", NotYet;
    /// Fault a projection that sees events out of order.
    fault_out_of_order_projections: bool = "FaultOutOfOrderProjections", default "false", NotYet;
    /// Milliseconds allowed to compile a user projection.
    projection_compilation_timeout: i32 = "ProjectionCompilationTimeout", default "500", Acted;
    /// Milliseconds allowed for one projection handler.
    projection_execution_timeout: i32 = "ProjectionExecutionTimeout", default "250", Acted;
    /// Maximum size in bytes of a projection's state.
    max_projection_state_size: Option<i32> = "MaxProjectionStateSize", default "", NotYet;
}

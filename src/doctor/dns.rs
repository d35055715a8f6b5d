//! TXT lookups for the checks (hickory's resolver): the system's resolvers, or the one
//! `[doctor] nameserver` names.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};
use hickory_resolver::{Resolver, TokioResolver};

/// What DNS said about a name's TXT records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txt {
    /// Each record's strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2: without spaces).
    Found(Vec<String>),
    /// No such name, or no TXT record at it.
    Missing,
    /// No answer: the resolver failed or timed out.
    Failed(String),
}

/// A resolver, or why none could be made.
pub struct Dns {
    resolver: Result<TokioResolver, String>,
}

/// Each lookup gets one try of this long per server: a page waits for at most a few.
const TIMEOUT: Duration = Duration::from_secs(4);

impl Dns {
    /// Asks `nameserver` (UDP, then TCP for long answers), or the system's resolvers.
    pub fn new(nameserver: Option<SocketAddr>) -> Self {
        let builder = match nameserver {
            Some(address) => {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut c| {
                        c.port = address.port();
                        c
                    })
                    .collect();
                let server = NameServerConfig::new(address.ip(), true, connections);
                Ok(Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                ))
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system's DNS configuration (/etc/resolv.conf): {e}")),
        };
        let resolver = builder.and_then(|mut b| {
            let options = b.options_mut();
            options.timeout = TIMEOUT;
            options.attempts = 1;
            b.build().map_err(|e| format!("cannot set up a DNS resolver: {e}"))
        });
        Self { resolver }
    }

    /// The TXT records at `name` (a domain name, internationalised or not).
    pub async fn txt(&self, name: &str) -> Txt {
        let resolver = match &self.resolver {
            Ok(r) => r,
            Err(e) => return Txt::Failed(e.clone()),
        };
        let ascii = match idna::domain_to_ascii(name.trim_end_matches('.')) {
            Ok(a) => a,
            Err(_) => return Txt::Failed(format!("{name} is not a domain name")),
        };
        // Fully qualified: no search domain from resolv.conf is tried first.
        let fqdn = match Name::from_ascii(format!("{ascii}.")) {
            Ok(n) => n,
            Err(e) => return Txt::Failed(format!("{name} is not a domain name: {e}")),
        };
        match resolver.txt_lookup(fqdn).await {
            Ok(lookup) => {
                let records: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::TXT(txt) => Some(
                            txt.txt_data
                                .iter()
                                .map(|piece| String::from_utf8_lossy(piece))
                                .collect::<String>(),
                        ),
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    Txt::Missing
                } else {
                    Txt::Found(records)
                }
            }
            Err(e) if e.is_no_records_found() => Txt::Missing,
            Err(e) => Txt::Failed(e.to_string()),
        }
    }
}

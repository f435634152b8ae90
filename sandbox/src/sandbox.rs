//! All three simulators at once, seeded, with the `spoke.toml` that points a
//! host at them — what `spoke sandbox`, the demo and the chain tests start.
use crate::{cyclesoftware, lagerkoll, wics};

/// The articles of Lagerkoll's seed data, which WICS is seeded to stock too.
pub const LAGERKOLL_ARTICLES: [&str; 4] = ["A-100", "A-200", "BIKE/26", "T-700"];

pub struct Sandbox {
    pub cyclesoftware: cyclesoftware::Simulator,
    pub wics: wics::Simulator,
    pub lagerkoll: lagerkoll::Simulator,
}

/// Fixed ports for `spoke sandbox` (so a saved spoke.toml keeps working);
/// tests use 0 for free ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    pub cyclesoftware: u16,
    pub wics: u16,
    pub lagerkoll: u16,
}

impl Sandbox {
    /// Start the three simulators with seed data. `hooks_base` is where the
    /// host receives webhooks (`http://127.0.0.1:PORT/hooks`), if known.
    pub async fn start(ports: Ports, hooks_base: Option<&str>) -> anyhow::Result<Sandbox> {
        let cyclesoftware = cyclesoftware::Simulator::start(cyclesoftware::Options {
            port: ports.cyclesoftware,
            webhook_url: hooks_base.map(|b| format!("{b}/cyclesoftware")),
            ..Default::default()
        })
        .await?;
        let wics = wics::Simulator::start(wics::Options { port: ports.wics, ..Default::default() }).await?;
        let lagerkoll = lagerkoll::Simulator::start(lagerkoll::Options { port: ports.lagerkoll, seed: true, ..Default::default() }).await?;
        // One world: the warehouse stocks the articles the sales system sells.
        {
            let mut w = wics.state.state.lock().unwrap();
            for code in LAGERKOLL_ARTICLES {
                if !w.items.iter().any(|i| i["code"] == *code) {
                    w.items.push(serde_json::json!({
                        "code": code, "internalDescription": format!("Lagerkoll {code}"), "description": format!("Lagerkoll {code}"),
                        "itemGroup": "FIETS", "defaultUnit": "ST", "assembled": false, "statusCode": "30", "barcode": "",
                    }));
                }
            }
        }
        Ok(Sandbox { cyclesoftware, wics, lagerkoll })
    }

    /// The `[connectors.*]` part of a spoke.toml for these simulators. The
    /// sandbox credentials are not secrets, so they are given as `value:`.
    pub fn connectors_toml(&self) -> String {
        let cs = cyclesoftware::Options::default();
        let w = wics::Options::default();
        let lk = lagerkoll::Options::default();
        let (wics_key, wics_secret) = &w.users[0];
        format!(
            r#"[connectors.cyclesoftware]
plugin = "cyclesoftware"
base_url = "{cs_url}"
[connectors.cyclesoftware.credentials]
username = "value:{cs_user}"
password = "value:{cs_password}"
hash_secret = "value:{cs_hash}"

[connectors.wics]
plugin = "wics"
base_url = "{wics_url}"
[connectors.wics.credentials]
apikey = "value:{wics_key}"
apisecret = "value:{wics_secret}"

[connectors.lagerkoll]
plugin = "lagerkoll"
base_url = "{lk_url}"
[connectors.lagerkoll.credentials]
store = "value:{lk_store}"
api_key = "value:{lk_key}"
"#,
            cs_url = self.cyclesoftware.url(),
            cs_user = cs.username,
            cs_password = cs.password,
            cs_hash = cs.hash_secret,
            wics_url = self.wics.url(),
            lk_url = self.lagerkoll.url(),
            lk_store = lk.store,
            lk_key = lk.api_key,
        )
    }
}

//! `config`: the operator's plain settings, limited to the names the
//! manifest declares.

use super::wit::config::Host;
use super::CallState;

impl Host for CallState {
    fn get(&mut self, name: String) -> Option<String> {
        self.plugin.grant.config.get(&name).cloned()
    }
}

//! Where an address is, as far as the operator's GeoIP database says (a
//! country at most): for analytics' country counts and the sign-in session
//! list. Nothing is guessed when there is no database.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// The operator's GeoIP database, when configured.
pub struct GeoIp(maxminddb::Reader<Vec<u8>>);

impl GeoIp {
    pub fn open(path: &Path) -> Result<GeoIp, String> {
        maxminddb::Reader::open_readfile(path).map(GeoIp).map_err(|e| format!("GeoIP database {}: {e}", path.display()))
    }

    /// The ISO country code of an address, when the database knows it.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let found = self.0.lookup(ip).ok()?;
        let country: maxminddb::geoip2::Country<'_> = found.decode().ok()??;
        country.country.iso_code.map(str::to_string)
    }

    /// The country of an address in English ("New Zealand"), when the
    /// database knows it; its ISO code when it has no English name.
    pub fn country_name(&self, ip: IpAddr) -> Option<String> {
        let found = self.0.lookup(ip).ok()?;
        let country: maxminddb::geoip2::Country<'_> = found.decode().ok()??;
        country.country.names.english.or(country.country.iso_code).map(str::to_string)
    }
}

/// Where an address is, as far as the operator's GeoIP database says: a
/// country, or nothing (never a guess) when there is no database or it does
/// not know the address.
#[derive(Clone, Default)]
pub struct Places(pub Option<Arc<GeoIp>>);

impl Places {
    pub fn country(&self, ip: &str) -> Option<String> {
        let ip: IpAddr = ip.parse().ok()?;
        self.0.as_ref()?.country_name(ip)
    }
}

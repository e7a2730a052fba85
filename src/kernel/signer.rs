//! Signed links: a value and a truncated HMAC over it, for links that act
//! without a sign-in (unsubscribe, tracking, short-lived file links), with a
//! key derived from the site secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Signs links that act without a sign-in (unsubscribe, tracking), with a key
/// derived from the site secret.
#[derive(Clone)]
pub struct LinkSigner {
    key: [u8; 32],
}

impl LinkSigner {
    pub fn new(secret: &[u8]) -> LinkSigner {
        use sha2::Digest;
        let mut hasher = Sha256::new();
        hasher.update(b"lyceum email links\0");
        hasher.update(secret);
        LinkSigner { key: hasher.finalize().into() }
    }

    fn mac(&self, message: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(message.as_bytes());
        mac
    }

    /// `<what>.<hex signature>` over `purpose` and `what`.
    pub fn sign(&self, purpose: &str, what: &str) -> String {
        let tag = hex::encode(&self.mac(&format!("{purpose}\0{what}")).finalize().into_bytes()[..16]);
        format!("{what}.{tag}")
    }

    /// The signed value when the token is genuine.
    pub fn verify<'t>(&self, purpose: &str, token: &'t str) -> Option<&'t str> {
        let (what, tag) = token.rsplit_once('.')?;
        let tag = hex::decode(tag).ok().filter(|tag| tag.len() == 16)?;
        self.mac(&format!("{purpose}\0{what}")).verify_truncated_left(&tag).ok()?;
        Some(what)
    }

    pub fn unsubscribe_token(&self, user_id: i64) -> String {
        self.sign("unsubscribe", &user_id.to_string())
    }

    pub fn unsubscriber(&self, token: &str) -> Option<i64> {
        self.verify("unsubscribe", token)?.parse().ok()
    }

    /// Identifies one recipient of one campaign in tracking links.
    pub fn tracking_token(&self, campaign_id: i64, user_id: i64) -> String {
        self.sign("track", &format!("{campaign_id}-{user_id}"))
    }

    pub fn tracked(&self, token: &str) -> Option<(i64, i64)> {
        let (campaign, user) = self.verify("track", token)?.split_once('-')?;
        Some((campaign.parse().ok()?, user.parse().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_and_forgeries_do_not() {
        let signer = LinkSigner::new(b"a secret of the site");
        let token = signer.unsubscribe_token(42);
        assert_eq!(signer.unsubscriber(&token), Some(42));
        assert_eq!(signer.unsubscriber(&token.replace("42.", "43.")), None, "another user's id");
        assert_eq!(signer.unsubscriber("42.00112233445566778899aabbccddeeff"), None);
        assert_eq!(signer.unsubscriber("42"), None);
        assert_eq!(LinkSigner::new(b"another secret").unsubscriber(&token), None);
        assert_eq!(signer.tracked(&token), None, "an unsubscribe token is not a tracking token");
        assert_eq!(signer.tracked(&signer.tracking_token(7, 42)), Some((7, 42)));
    }
}

//! Sign-in with OpenID Connect providers (ACC-4): the protocol side. No HTML.
//!
//! - Providers are entries of one configured list (`oidc_providers`); Google
//!   and Microsoft are two such entries, any other issuer is added the same way.
//! - Endpoints come from discovery (`/.well-known/openid-configuration`), whose
//!   `issuer` must be the configured one; metadata and keys are cached for an
//!   hour, and the keys are fetched again once when a token names a key that is
//!   not known (rotation).
//! - The flow is the Authorization Code flow with PKCE (S256), a `state` bound
//!   to the browser and used once, and a `nonce` the ID token must carry.
//! - The ID token's signature is checked against the issuer's keys, with the
//!   algorithms the issuer announces (never `none`, never HMAC), plus `iss`,
//!   `aud` (and `azp`), `exp` and `nonce`.
//! - Only the subject, email (and whether the provider verified it) and name
//!   are kept from the claims; anything else the provider sends is dropped here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

pub use crate::config::ProviderConfig;

/// Scopes asked for: enough for name and email, nothing more.
pub const SCOPES: [&str; 2] = ["email", "profile"];
/// How long metadata and keys are trusted before being fetched again.
const CACHE_FOR: Duration = Duration::from_secs(3600);
/// Keys are fetched again for an unknown key id at most this often.
const REFETCH_KEYS_AFTER: Duration = Duration::from_secs(60);
/// Clock skew allowed on `exp` and `iat`.
const LEEWAY_SECS: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached or answered nonsense.
    #[error("{0} could not be reached. Please try again in a moment.")]
    Unavailable(String, #[source] Box<dyn std::error::Error + Send + Sync>),
    /// An answer failed a check; the reason goes to the log, not the page.
    #[error("the answer from {provider} could not be verified ({reason})")]
    Refused { provider: String, reason: String },
}

impl OidcError {
    fn refused(provider: &str, reason: impl Into<String>) -> OidcError {
        OidcError::Refused { provider: provider.to_string(), reason: reason.into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
}

struct Cached {
    metadata: Metadata,
    keys: JwkSet,
    fetched: Instant,
    keys_fetched: Instant,
}

pub struct Provider {
    pub config: ProviderConfig,
    cache: RwLock<Option<Cached>>,
}

/// The token response: the standard fields plus the ID token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    pub id_token: String,
}
impl ExtraTokenFields for IdTokenField {}

type OidcClient = Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenField, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What a sign-in sends away and must find again when the browser returns.
#[derive(Debug, Clone)]
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Who the provider says signed in: all Lyceum takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    /// Kept sealed, to revoke at the provider when the link is removed.
    #[serde(skip)]
    pub access_token: Option<String>,
    #[serde(skip)]
    pub refresh_token: Option<String>,
}

/// The claims read from an ID token or the userinfo answer.
#[derive(Debug, Clone, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<serde_json::Value>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    given_name: Option<String>,
    #[serde(default)]
    family_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl Claims {
    fn verified(&self) -> bool {
        // Some providers send the boolean as a string.
        matches!(&self.email_verified, Some(serde_json::Value::Bool(true)))
            || matches!(&self.email_verified, Some(serde_json::Value::String(s)) if s == "true")
    }
}

/// The configured providers and one HTTP client for talking to them.
#[derive(Clone)]
pub struct Providers {
    list: Vec<Arc<Provider>>,
    http: reqwest::Client,
    outbound: crate::net::Outbound,
    base_url: String,
}

/// The issuer Microsoft's multi-tenant discovery announces, with `{tenantid}`
/// standing for the tenant each token names in its `tid` claim.
const TENANT: &str = "{tenantid}";

pub fn issuer_matches(configured: &str, announced: &str) -> bool {
    let trim = |s: &str| s.trim_end_matches('/').to_string();
    if trim(configured) == trim(announced) {
        return true;
    }
    // `…/common/v2.0` (or organizations, consumers) announces `…/{tenantid}/v2.0`.
    announced.contains(TENANT)
        && ["common", "organizations", "consumers"]
            .iter()
            .any(|t| trim(&announced.replace(TENANT, t)) == trim(configured))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Providers {
    pub fn from_config(
        configured: &[ProviderConfig],
        base_url: &str,
        outbound: &crate::net::Outbound,
    ) -> Result<Providers, String> {
        let mut list = Vec::new();
        for p in configured {
            if !valid_id(&p.id) {
                return Err(format!(
                    "oidc_providers: the id {:?} must be 1 to 32 lower-case letters, digits or '-'",
                    p.id
                ));
            }
            if list.iter().any(|q: &Arc<Provider>| q.config.id == p.id) {
                return Err(format!("oidc_providers: the id {:?} is used twice", p.id));
            }
            let url = url::Url::parse(&p.issuer).map_err(|e| format!("oidc_providers.{}: issuer: {e}", p.id))?;
            if !matches!(url.scheme(), "https" | "http") {
                return Err(format!("oidc_providers.{}: the issuer must be an http(s) URL", p.id));
            }
            if p.client_id.trim().is_empty() || p.client_secret.trim().is_empty() {
                return Err(format!("oidc_providers.{}: client_id and client_secret are required", p.id));
            }
            list.push(Arc::new(Provider { config: p.clone(), cache: RwLock::new(None) }));
        }
        let http = outbound
            .client_builder()
            // Following redirects from an identity provider's endpoints invites SSRF.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Providers { list, http, outbound: outbound.clone(), base_url: base_url.trim_end_matches('/').to_string() })
    }

    pub fn get(&self, id: &str) -> Option<Arc<Provider>> {
        self.list.iter().find(|p| p.config.id == id).cloned()
    }

    /// (id, name) of every provider, in configured order.
    pub fn names(&self) -> Vec<(String, String)> {
        self.list.iter().map(|p| (p.config.id.clone(), p.config.name.clone())).collect()
    }

    /// Origins a sign-in form is redirected to (the CSP's form-action).
    pub fn origins(&self) -> Vec<String> {
        self.list
            .iter()
            .filter_map(|p| url::Url::parse(&p.config.issuer).ok())
            .map(|u| u.origin().ascii_serialization())
            .collect()
    }

    pub fn redirect_uri(&self, provider: &Provider) -> String {
        format!("{}/signin/oidc/{}/callback", self.base_url, provider.config.id)
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(&self, provider: &Provider, url: &str) -> Result<T, OidcError> {
        let unavailable =
            |e: Box<dyn std::error::Error + Send + Sync>| OidcError::Unavailable(provider.config.name.clone(), e);
        let response = self.http.get(url).send().await.map_err(|e| unavailable(e.into()))?;
        let response = response.error_for_status().map_err(|e| unavailable(e.into()))?;
        response.json::<T>().await.map_err(|e| unavailable(e.into()))
    }

    /// The provider's metadata and keys, from the cache or freshly discovered.
    async fn discovered(&self, provider: &Provider) -> Result<(Metadata, JwkSet), OidcError> {
        if let Some(c) = provider.cache.read().await.as_ref()
            && c.fetched.elapsed() < CACHE_FOR
        {
            return Ok((c.metadata.clone(), c.keys.clone()));
        }
        let issuer = provider.config.issuer.trim_end_matches('/');
        self.guard(provider, issuer)?;
        let metadata: Metadata =
            self.fetch_json(provider, &format!("{issuer}/.well-known/openid-configuration")).await?;
        if !issuer_matches(&provider.config.issuer, &metadata.issuer) {
            return Err(OidcError::refused(
                &provider.config.name,
                format!("discovery names the issuer {:?}, not {:?}", metadata.issuer, provider.config.issuer),
            ));
        }
        // Names are checked when resolved; addresses written in the URLs are checked here.
        let announced = [Some(&metadata.jwks_uri), Some(&metadata.token_endpoint), metadata.userinfo_endpoint.as_ref()];
        for url in announced.into_iter().flatten().chain(metadata.revocation_endpoint.as_ref()) {
            self.guard(provider, url)?;
        }
        let keys: JwkSet = self.fetch_json(provider, &metadata.jwks_uri).await?;
        let now = Instant::now();
        *provider.cache.write().await =
            Some(Cached { metadata: metadata.clone(), keys: keys.clone(), fetched: now, keys_fetched: now });
        Ok((metadata, keys))
    }

    /// Refuses a URL at an address the outbound policy does not permit.
    fn guard(&self, provider: &Provider, url: &str) -> Result<(), OidcError> {
        let parsed = url::Url::parse(url).map_err(|e| OidcError::refused(&provider.config.name, e.to_string()))?;
        self.outbound.check_url(&parsed).map_err(|e| OidcError::refused(&provider.config.name, e.to_string()))
    }

    /// Keys fetched again after a token named an unknown key id.
    async fn refreshed_keys(&self, provider: &Provider) -> Result<Option<JwkSet>, OidcError> {
        let jwks_uri = {
            let cache = provider.cache.read().await;
            match cache.as_ref() {
                Some(c) if c.keys_fetched.elapsed() >= REFETCH_KEYS_AFTER => c.metadata.jwks_uri.clone(),
                _ => return Ok(None),
            }
        };
        let keys: JwkSet = self.fetch_json(provider, &jwks_uri).await?;
        if let Some(c) = provider.cache.write().await.as_mut() {
            c.keys = keys.clone();
            c.keys_fetched = Instant::now();
        }
        Ok(Some(keys))
    }

    fn client(&self, provider: &Provider, metadata: &Metadata) -> Result<OidcClient, OidcError> {
        let bad = |what: &str, e: url::ParseError| OidcError::refused(&provider.config.name, format!("{what}: {e}"));
        Ok(Client::new(ClientId::new(provider.config.client_id.clone()))
            .set_client_secret(ClientSecret::new(provider.config.client_secret.clone()))
            .set_auth_uri(
                AuthUrl::new(metadata.authorization_endpoint.clone()).map_err(|e| bad("authorization_endpoint", e))?,
            )
            .set_token_uri(TokenUrl::new(metadata.token_endpoint.clone()).map_err(|e| bad("token_endpoint", e))?)
            .set_redirect_uri(RedirectUrl::new(self.redirect_uri(provider)).map_err(|e| bad("redirect_uri", e))?))
    }

    /// Where to send the browser, and what must come back with it.
    pub async fn start(&self, provider: &Provider) -> Result<Started, OidcError> {
        let (metadata, _) = self.discovered(provider).await?;
        let client = self.client(provider, &metadata)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = crate::kernel::tokens::random_token(24);
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("openid".into()))
            .add_scopes(SCOPES.iter().map(|s| Scope::new(s.to_string())))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce.clone())
            .url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce,
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Trades the code for tokens and returns who signed in, after every check.
    pub async fn finish(
        &self,
        provider: &Provider,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, OidcError> {
        let name = provider.config.name.clone();
        let (metadata, keys) = self.discovered(provider).await?;
        let client = self.client(provider, &metadata)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                oauth2::RequestTokenError::ServerResponse(r) => {
                    OidcError::refused(&name, format!("the token endpoint refused the code: {r}"))
                }
                other => OidcError::Unavailable(name.clone(), Box::new(other)),
            })?;
        let id_token = &response.extra_fields().id_token;
        let expected = Expected {
            issuer: &metadata.issuer,
            client_id: &provider.config.client_id,
            nonce,
            algorithms: &metadata.id_token_signing_alg_values_supported,
        };
        let claims = match verify_id_token(id_token, &keys, &expected) {
            Err(Refusal::UnknownKey) => match self.refreshed_keys(provider).await? {
                Some(keys) => verify_id_token(id_token, &keys, &expected),
                None => Err(Refusal::UnknownKey),
            },
            other => other,
        }
        .map_err(|r| OidcError::refused(&name, r.to_string()))?;
        let access_token = response.access_token().secret().clone();
        let mut identity = Identity {
            subject: claims.sub.clone(),
            email: claims.email.clone(),
            email_verified: claims.verified(),
            given_name: claims.given_name.clone(),
            family_name: claims.family_name.clone(),
            name: claims.name.clone(),
            access_token: Some(access_token.clone()),
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        };
        // Providers that keep the ID token small answer at userinfo instead.
        if (identity.email.is_none() || (identity.name.is_none() && identity.given_name.is_none()))
            && let Some(userinfo) = &metadata.userinfo_endpoint
        {
            let info: Claims = {
                let unavailable = |e: reqwest::Error| OidcError::Unavailable(name.clone(), Box::new(e));
                let r = self.http.get(userinfo).bearer_auth(&access_token).send().await.map_err(unavailable)?;
                r.error_for_status().map_err(unavailable)?.json().await.map_err(unavailable)?
            };
            if info.sub != claims.sub {
                return Err(OidcError::refused(&name, "userinfo describes another subject"));
            }
            if identity.email.is_none() {
                identity.email = info.email.clone();
                identity.email_verified = info.verified();
            }
            identity.given_name = identity.given_name.or(info.given_name);
            identity.family_name = identity.family_name.or(info.family_name);
            identity.name = identity.name.or(info.name);
        }
        identity.email = identity.email.map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty());
        Ok(identity)
    }

    /// Asks the provider to revoke a token kept for a link (RFC 7009); best
    /// effort, as the link is gone either way. The token travels only over
    /// HTTPS, or plain HTTP to a provider on this machine (loopback).
    pub async fn revoke(&self, provider: &Provider, access_token: &str) {
        let outcome = async {
            let (metadata, _) = self.discovered(provider).await?;
            let Some(endpoint) = metadata.revocation_endpoint else { return Ok(()) };
            let url =
                url::Url::parse(&endpoint).map_err(|e| OidcError::refused(&provider.config.name, e.to_string()))?;
            let loopback = url.host_str().is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]");
            if url.scheme() != "https" && !loopback {
                return Err(OidcError::refused(&provider.config.name, "the revocation endpoint is not HTTPS"));
            }
            let unavailable = |e: reqwest::Error| OidcError::Unavailable(provider.config.name.clone(), Box::new(e));
            self.http
                .post(url)
                .basic_auth(&provider.config.client_id, Some(&provider.config.client_secret))
                .form(&[("token", access_token), ("token_type_hint", "access_token")])
                .send()
                .await
                .map_err(unavailable)?
                .error_for_status()
                .map_err(unavailable)?;
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(provider = %provider.config.id, error = %e, "revoking a token at the provider failed");
        }
    }
}

/// What an ID token must say.
struct Expected<'a> {
    issuer: &'a str,
    client_id: &'a str,
    nonce: &'a str,
    algorithms: &'a [String],
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum Refusal {
    #[error("the ID token is malformed or uses an algorithm that is not allowed: {0}")]
    Header(String),
    #[error("the ID token names a key the issuer does not publish")]
    UnknownKey,
    #[error("the ID token's signature or claims are invalid: {0}")]
    Invalid(String),
    #[error("the ID token was issued by {0:?}")]
    Issuer(String),
    #[error("the ID token is for another client")]
    Audience,
    #[error("the ID token does not carry this sign-in's nonce")]
    Nonce,
}

/// Asymmetric algorithms only: `none` cannot be parsed and HMAC is refused,
/// since the client secret is not a key the issuer signs with.
fn allowed(alg: Algorithm, announced: &[String]) -> bool {
    use Algorithm::*;
    let asymmetric = matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA);
    let name = format!("{alg:?}");
    asymmetric && (announced.is_empty() && alg == RS256 || announced.contains(&name))
}

fn verify_id_token(token: &str, keys: &JwkSet, expected: &Expected<'_>) -> Result<Claims, Refusal> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| Refusal::Header(e.to_string()))?;
    if !allowed(header.alg, expected.algorithms) {
        return Err(Refusal::Header(format!("{:?}", header.alg)));
    }
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or(Refusal::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| Refusal::Invalid(e.to_string()))?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECS;
    validation.set_audience(&[expected.client_id]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
    // `iss` is compared below, where Microsoft's tenant template is understood.
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidAudience => Refusal::Audience,
        _ => Refusal::Invalid(e.to_string()),
    })?;
    let claims = data.claims;
    let iss = claims.iss.clone().unwrap_or_default();
    let wanted = match &claims.tid {
        Some(tid) if expected.issuer.contains(TENANT) => expected.issuer.replace(TENANT, tid),
        _ => expected.issuer.to_string(),
    };
    if iss.trim_end_matches('/') != wanted.trim_end_matches('/') {
        return Err(Refusal::Issuer(iss));
    }
    // With several audiences, the authorised party must be this client.
    if let Some(serde_json::Value::Array(auds)) = &claims.aud
        && auds.len() > 1
        && claims.azp.as_deref() != Some(expected.client_id)
    {
        return Err(Refusal::Audience);
    }
    let nonce_ok = claims
        .nonce
        .as_deref()
        .is_some_and(|n| crate::kernel::tokens::constant_time_eq(n.as_bytes(), expected.nonce.as_bytes()));
    if !nonce_ok {
        return Err(Refusal::Nonce);
    }
    Ok(claims)
}

/// A sealed copy of a token for the database (SEC-2).
pub const ACCESS_TOKEN_FIELD: &str = "oidc_links.access_token";
pub const REFRESH_TOKEN_FIELD: &str = "oidc_links.refresh_token";

/// The "Sign in with …" buttons (ACC-4) of every page's layout, for the
/// sign-in and sign-up pages (`web::page::LayoutParts`).
pub fn layout_providers(req: &rocket::Request<'_>) -> serde_json::Value {
    let providers = req
        .rocket()
        .state::<Providers>()
        .map(|p| p.names().into_iter().map(|(id, name)| super::views::ProviderButton { id, name }).collect::<Vec<_>>());
    // A list of two strings each always becomes JSON.
    serde_json::to_value(providers).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsofts_tenant_template_matches_its_multi_tenant_issuers_only() {
        let announced = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(issuer_matches("https://login.microsoftonline.com/common/v2.0", announced));
        assert!(issuer_matches("https://login.microsoftonline.com/organizations/v2.0/", announced));
        assert!(!issuer_matches("https://login.microsoftonline.com/evil/v2.0", announced));
        assert!(issuer_matches("https://accounts.google.com", "https://accounts.google.com/"));
        assert!(!issuer_matches("https://accounts.google.com", "https://accounts.google.com.evil.example"));
    }

    #[test]
    fn only_asymmetric_announced_algorithms_are_allowed() {
        let rs = vec!["RS256".to_string()];
        assert!(allowed(Algorithm::RS256, &rs));
        assert!(!allowed(Algorithm::ES256, &rs), "not announced");
        assert!(!allowed(Algorithm::HS256, &["HS256".to_string()]), "HMAC never");
        assert!(allowed(Algorithm::RS256, &[]), "RS256 is the default of OpenID Connect Discovery");
    }
}

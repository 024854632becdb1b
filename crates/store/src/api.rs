//! [`Backend`]: the store's operations as one object-safe trait, implemented by the SQLite
//! [`Store`] and the PostgreSQL [`PgStore`] with the same semantics (same errors, same
//! timestamp text, same append-only and never-overwrite rules, same audit entries).
//!
//! Both types also keep these operations as inherent methods, so code holding a concrete
//! `Store` needs no trait in scope. The generic imports ([`Store::import`],
//! [`Store::try_import`]) are not object-safe: through the trait they are
//! [`Backend::import_stream`], with `import` and `try_import` wrappers on `dyn Backend`.

use std::convert::Infallible;
use std::fmt::Display;

use borderlens_domain::{DeclarationItem, ItemKey};
use chrono::NaiveDate;

use crate::pg::PgStore;
use crate::{
    AuditEntry, ImportOutcome, ItemFilter, LabelCounts, LoginGate, ModelInfo, NewControlResult,
    NewDecision, Recorded, RecordedConflict, SharingFilter, Store, StoreError, StoredControlResult,
    StoredDecision, StoredModel, StoredScore, StoredSession, StoredToken, StoredUser,
};

/// The store's operations, whatever the database. See [`Store`] for what each one does; the
/// PostgreSQL backend does the same.
pub trait Backend: Send {
    /// `sqlite` or `postgresql`.
    fn kind(&self) -> &'static str;
    /// Where the data lives: the SQLite file, or the PostgreSQL URL without its password.
    fn location(&self) -> String;
    /// See [`Store::set_actor`].
    fn set_actor(&mut self, actor: &str);
    /// See [`Store::actor`].
    fn actor(&self) -> &str;
    /// See [`Store::schema_version`].
    fn schema_version(&self) -> Result<u32, StoreError>;

    /// [`Store::try_import`] with the stream as a trait object (errors as text).
    fn import_stream(
        &mut self,
        source: &str,
        items: &mut dyn Iterator<Item = Result<(DeclarationItem, u64), String>>,
    ) -> Result<ImportOutcome, StoreError>;
    /// See [`Store::items`].
    fn items(&self, filter: &ItemFilter) -> Result<Vec<DeclarationItem>, StoreError>;
    /// See [`Store::item`].
    fn item(&self, key: &ItemKey) -> Result<Option<DeclarationItem>, StoreError>;
    /// See [`Store::related_items`].
    fn related_items(
        &self,
        importer_id: &str,
        declarant_id: &str,
        exclude: &str,
        limit: usize,
    ) -> Result<Vec<(DeclarationItem, String)>, StoreError>;
    /// See [`Store::items_sharing`].
    fn items_sharing(&self, filter: &SharingFilter) -> Result<Vec<DeclarationItem>, StoreError>;
    /// See [`Store::label_counts`].
    fn label_counts(&self, before: NaiveDate) -> Result<LabelCounts, StoreError>;
    /// See [`Store::last_item_date`].
    fn last_item_date(&self) -> Result<Option<NaiveDate>, StoreError>;
    /// See [`Store::count_items`].
    fn count_items(&self) -> Result<u64, StoreError>;
    /// See [`Store::conflicts_for`].
    fn conflicts_for(&self, key: &ItemKey) -> Result<Vec<RecordedConflict>, StoreError>;

    /// See [`Store::save_model`].
    fn save_model(
        &mut self,
        name: &str,
        metadata_json: &str,
        bytes: &[u8],
    ) -> Result<u32, StoreError>;
    /// See [`Store::load_model`].
    fn load_model(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredModel>, StoreError>;
    /// See [`Store::list_models`].
    fn list_models(&self) -> Result<Vec<ModelInfo>, StoreError>;

    /// See [`Store::save_scores`].
    fn save_scores(
        &mut self,
        model: &str,
        version: u32,
        scores: &[(ItemKey, f64)],
    ) -> Result<usize, StoreError>;
    /// See [`Store::save_scores_with_reasons`].
    fn save_scores_with_reasons(
        &mut self,
        model: &str,
        version: u32,
        scores: &[(ItemKey, f64, Vec<String>)],
    ) -> Result<usize, StoreError>;
    /// See [`Store::scores_for`].
    fn scores_for(&self, key: &ItemKey) -> Result<Vec<StoredScore>, StoreError>;

    /// See [`Store::append_audit`].
    fn append_audit(
        &mut self,
        actor: &str,
        action: &str,
        subject: &str,
        detail_json: &str,
    ) -> Result<i64, StoreError>;
    /// See [`Store::audit_entries`].
    fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// See [`Store::save_policy`].
    fn save_policy(&mut self, name: &str, body_json: &str) -> Result<u32, StoreError>;
    /// See [`Store::load_policy`].
    fn load_policy(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<(u32, String)>, StoreError>;
    /// See [`Store::is_decided`].
    fn is_decided(&self, declaration_id: &str) -> Result<bool, StoreError>;
    /// See [`Store::batch_decided`].
    fn batch_decided(&self, batch: &str) -> Result<bool, StoreError>;
    /// See [`Store::record_decisions`].
    fn record_decisions(&mut self, decisions: &[NewDecision]) -> Result<usize, StoreError>;
    /// See [`Store::override_decision`].
    fn override_decision(
        &mut self,
        declaration_id: &str,
        lane: &str,
        reason: &str,
    ) -> Result<StoredDecision, StoreError>;
    /// See [`Store::decisions_for`].
    fn decisions_for(&self, declaration_id: &str) -> Result<Vec<StoredDecision>, StoreError>;
    /// See [`Store::decisions`].
    fn decisions(&self, batch_prefix: Option<&str>) -> Result<Vec<StoredDecision>, StoreError>;

    /// See [`Store::record_control_result`].
    fn record_control_result(&mut self, result: &NewControlResult) -> Result<Recorded, StoreError>;
    /// See [`Store::control_results_for`].
    fn control_results_for(
        &self,
        declaration_id: &str,
    ) -> Result<Vec<StoredControlResult>, StoreError>;
    /// See [`Store::control_results`].
    fn control_results(&self) -> Result<Vec<StoredControlResult>, StoreError>;

    /// See [`Store::add_user`].
    fn add_user(&mut self, name: &str, role: &str, password_hash: &str) -> Result<(), StoreError>;
    /// See [`Store::user`].
    fn user(&self, name: &str) -> Result<Option<StoredUser>, StoreError>;
    /// See [`Store::set_password_hash`].
    fn set_password_hash(&mut self, name: &str, password_hash: &str) -> Result<bool, StoreError>;
    /// See [`Store::users`].
    fn users(&self) -> Result<Vec<StoredUser>, StoreError>;
    /// See [`Store::add_api_token`].
    fn add_api_token(&mut self, user: &str, token_sha256: &str) -> Result<(), StoreError>;
    /// See [`Store::user_for_token`].
    fn user_for_token(&self, token_sha256: &str) -> Result<Option<StoredUser>, StoreError>;
    /// See [`Store::api_tokens`].
    fn api_tokens(&self, user: Option<&str>) -> Result<Vec<StoredToken>, StoreError>;
    /// See [`Store::revoke_api_token`].
    fn revoke_api_token(&mut self, token_sha256: &str) -> Result<bool, StoreError>;
    /// See [`Store::begin_login`].
    fn begin_login(
        &mut self,
        keys: &[String],
        now_ms: i64,
        window_ms: i64,
        max_failures: u32,
    ) -> Result<LoginGate, StoreError>;
    /// See [`Store::forget_login_failures`].
    fn forget_login_failures(&mut self, ids: &[i64]) -> Result<(), StoreError>;
    /// See [`Store::clock_ms`].
    fn clock_ms(&self) -> Result<i64, StoreError>;
    /// See [`Store::create_session`].
    fn create_session(
        &mut self,
        session_sha256: &str,
        user: &str,
        csrf_token: &str,
        ttl_seconds: u32,
    ) -> Result<String, StoreError>;
    /// See [`Store::session`].
    fn session(&self, session_sha256: &str) -> Result<Option<StoredSession>, StoreError>;
    /// See [`Store::delete_session`].
    fn delete_session(&mut self, session_sha256: &str) -> Result<bool, StoreError>;
}

impl dyn Backend + '_ {
    /// [`Store::import`] through the trait.
    pub fn import<I>(&mut self, source: &str, items: I) -> Result<ImportOutcome, StoreError>
    where
        I: IntoIterator<Item = (DeclarationItem, u64)>,
    {
        self.try_import(source, items.into_iter().map(Ok::<_, Infallible>))
    }

    /// [`Store::try_import`] through the trait.
    pub fn try_import<I, E>(&mut self, source: &str, items: I) -> Result<ImportOutcome, StoreError>
    where
        I: IntoIterator<Item = Result<(DeclarationItem, u64), E>>,
        E: Display,
    {
        let mut stream = items
            .into_iter()
            .map(|entry| entry.map_err(|e| e.to_string()));
        self.import_stream(source, &mut stream)
    }
}

/// Implements [`Backend`] for a type whose inherent methods have the trait's names and
/// signatures, by delegation.
macro_rules! delegate_backend {
    ($ty:ty, $kind:literal, $location:expr) => {
        impl Backend for $ty {
            fn kind(&self) -> &'static str {
                $kind
            }
            fn location(&self) -> String {
                let location: fn(&$ty) -> String = $location;
                location(self)
            }
            fn set_actor(&mut self, actor: &str) {
                <$ty>::set_actor(self, actor)
            }
            fn actor(&self) -> &str {
                <$ty>::actor(self)
            }
            fn schema_version(&self) -> Result<u32, StoreError> {
                <$ty>::schema_version(self)
            }
            fn import_stream(
                &mut self,
                source: &str,
                items: &mut dyn Iterator<Item = Result<(DeclarationItem, u64), String>>,
            ) -> Result<ImportOutcome, StoreError> {
                <$ty>::try_import(self, source, items)
            }
            fn items(&self, filter: &ItemFilter) -> Result<Vec<DeclarationItem>, StoreError> {
                <$ty>::items(self, filter)
            }
            fn item(&self, key: &ItemKey) -> Result<Option<DeclarationItem>, StoreError> {
                <$ty>::item(self, key)
            }
            fn related_items(
                &self,
                importer_id: &str,
                declarant_id: &str,
                exclude: &str,
                limit: usize,
            ) -> Result<Vec<(DeclarationItem, String)>, StoreError> {
                <$ty>::related_items(self, importer_id, declarant_id, exclude, limit)
            }
            fn items_sharing(
                &self,
                filter: &SharingFilter,
            ) -> Result<Vec<DeclarationItem>, StoreError> {
                <$ty>::items_sharing(self, filter)
            }
            fn label_counts(&self, before: NaiveDate) -> Result<LabelCounts, StoreError> {
                <$ty>::label_counts(self, before)
            }
            fn last_item_date(&self) -> Result<Option<NaiveDate>, StoreError> {
                <$ty>::last_item_date(self)
            }
            fn count_items(&self) -> Result<u64, StoreError> {
                <$ty>::count_items(self)
            }
            fn conflicts_for(&self, key: &ItemKey) -> Result<Vec<RecordedConflict>, StoreError> {
                <$ty>::conflicts_for(self, key)
            }
            fn save_model(
                &mut self,
                name: &str,
                metadata_json: &str,
                bytes: &[u8],
            ) -> Result<u32, StoreError> {
                <$ty>::save_model(self, name, metadata_json, bytes)
            }
            fn load_model(
                &self,
                name: &str,
                version: Option<u32>,
            ) -> Result<Option<StoredModel>, StoreError> {
                <$ty>::load_model(self, name, version)
            }
            fn list_models(&self) -> Result<Vec<ModelInfo>, StoreError> {
                <$ty>::list_models(self)
            }
            fn save_scores(
                &mut self,
                model: &str,
                version: u32,
                scores: &[(ItemKey, f64)],
            ) -> Result<usize, StoreError> {
                <$ty>::save_scores(self, model, version, scores)
            }
            fn save_scores_with_reasons(
                &mut self,
                model: &str,
                version: u32,
                scores: &[(ItemKey, f64, Vec<String>)],
            ) -> Result<usize, StoreError> {
                <$ty>::save_scores_with_reasons(self, model, version, scores)
            }
            fn scores_for(&self, key: &ItemKey) -> Result<Vec<StoredScore>, StoreError> {
                <$ty>::scores_for(self, key)
            }
            fn append_audit(
                &mut self,
                actor: &str,
                action: &str,
                subject: &str,
                detail_json: &str,
            ) -> Result<i64, StoreError> {
                <$ty>::append_audit(self, actor, action, subject, detail_json)
            }
            fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
                <$ty>::audit_entries(self, limit)
            }
            fn save_policy(&mut self, name: &str, body_json: &str) -> Result<u32, StoreError> {
                <$ty>::save_policy(self, name, body_json)
            }
            fn load_policy(
                &self,
                name: &str,
                version: Option<u32>,
            ) -> Result<Option<(u32, String)>, StoreError> {
                <$ty>::load_policy(self, name, version)
            }
            fn is_decided(&self, declaration_id: &str) -> Result<bool, StoreError> {
                <$ty>::is_decided(self, declaration_id)
            }
            fn batch_decided(&self, batch: &str) -> Result<bool, StoreError> {
                <$ty>::batch_decided(self, batch)
            }
            fn record_decisions(&mut self, decisions: &[NewDecision]) -> Result<usize, StoreError> {
                <$ty>::record_decisions(self, decisions)
            }
            fn override_decision(
                &mut self,
                declaration_id: &str,
                lane: &str,
                reason: &str,
            ) -> Result<StoredDecision, StoreError> {
                <$ty>::override_decision(self, declaration_id, lane, reason)
            }
            fn decisions_for(
                &self,
                declaration_id: &str,
            ) -> Result<Vec<StoredDecision>, StoreError> {
                <$ty>::decisions_for(self, declaration_id)
            }
            fn decisions(
                &self,
                batch_prefix: Option<&str>,
            ) -> Result<Vec<StoredDecision>, StoreError> {
                <$ty>::decisions(self, batch_prefix)
            }
            fn record_control_result(
                &mut self,
                result: &NewControlResult,
            ) -> Result<Recorded, StoreError> {
                <$ty>::record_control_result(self, result)
            }
            fn control_results_for(
                &self,
                declaration_id: &str,
            ) -> Result<Vec<StoredControlResult>, StoreError> {
                <$ty>::control_results_for(self, declaration_id)
            }
            fn control_results(&self) -> Result<Vec<StoredControlResult>, StoreError> {
                <$ty>::control_results(self)
            }
            fn add_user(
                &mut self,
                name: &str,
                role: &str,
                password_hash: &str,
            ) -> Result<(), StoreError> {
                <$ty>::add_user(self, name, role, password_hash)
            }
            fn user(&self, name: &str) -> Result<Option<StoredUser>, StoreError> {
                <$ty>::user(self, name)
            }
            fn set_password_hash(
                &mut self,
                name: &str,
                password_hash: &str,
            ) -> Result<bool, StoreError> {
                <$ty>::set_password_hash(self, name, password_hash)
            }
            fn users(&self) -> Result<Vec<StoredUser>, StoreError> {
                <$ty>::users(self)
            }
            fn add_api_token(&mut self, user: &str, token_sha256: &str) -> Result<(), StoreError> {
                <$ty>::add_api_token(self, user, token_sha256)
            }
            fn user_for_token(&self, token_sha256: &str) -> Result<Option<StoredUser>, StoreError> {
                <$ty>::user_for_token(self, token_sha256)
            }
            fn api_tokens(&self, user: Option<&str>) -> Result<Vec<StoredToken>, StoreError> {
                <$ty>::api_tokens(self, user)
            }
            fn revoke_api_token(&mut self, token_sha256: &str) -> Result<bool, StoreError> {
                <$ty>::revoke_api_token(self, token_sha256)
            }
            fn begin_login(
                &mut self,
                keys: &[String],
                now_ms: i64,
                window_ms: i64,
                max_failures: u32,
            ) -> Result<LoginGate, StoreError> {
                <$ty>::begin_login(self, keys, now_ms, window_ms, max_failures)
            }
            fn forget_login_failures(&mut self, ids: &[i64]) -> Result<(), StoreError> {
                <$ty>::forget_login_failures(self, ids)
            }
            fn clock_ms(&self) -> Result<i64, StoreError> {
                <$ty>::clock_ms(self)
            }
            fn create_session(
                &mut self,
                session_sha256: &str,
                user: &str,
                csrf_token: &str,
                ttl_seconds: u32,
            ) -> Result<String, StoreError> {
                <$ty>::create_session(self, session_sha256, user, csrf_token, ttl_seconds)
            }
            fn session(&self, session_sha256: &str) -> Result<Option<StoredSession>, StoreError> {
                <$ty>::session(self, session_sha256)
            }
            fn delete_session(&mut self, session_sha256: &str) -> Result<bool, StoreError> {
                <$ty>::delete_session(self, session_sha256)
            }
        }
    };
}

delegate_backend!(Store, "sqlite", |store| store.path().display().to_string());
delegate_backend!(PgStore, "postgresql", |store| store.url().to_string());

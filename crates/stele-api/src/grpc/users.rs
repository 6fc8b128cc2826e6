//! `event_store.client.users.Users` (PROTOCOL-OPS.md §3): Create, Update, Delete, Disable,
//! Enable, Details, ChangePassword and ResetPassword over
//! [`stele_services::users::Users`].
//!
//! Every call first asks the node's [`AccessControl`] whether the caller (the
//! [`Principal`](stele_core::access::Principal) the authentication layer put on the request; none means anonymous) may
//! call it, as EventStoreDB's default policy says (§3.3): Create, Update, Delete, Enable,
//! Disable, ResetPassword and listing every user (Details with an empty login name) need
//! `$admins`; one user's Details and ChangePassword need an authenticated caller, and
//! ChangePassword then needs the user's current password. A refusal is PERMISSION_DENIED
//! `Access Denied` with `exception: access-denied`. Then the request is checked (a login
//! name must be given; the bounds are [`record::check_fields`]'s and the password limit
//! [`stele_services::users::password::MAX_PASSWORD_BYTES`], which `Users` checks again),
//! and the operation runs. Its errors reach the wire through [`status::user_error`].
//!
//! Details streams one message per user: the one named, or every user sorted by login
//! name. `last_updated` is the time of the user's latest record in .NET ticks since the
//! Unix epoch, absent when unknown.

use std::pin::Pin;

use futures::Stream;
use stele_core::access::Operation;

use super::caller::principal;
use stele_proto::users::details_resp::user_details::DateTime;
use stele_proto::users::details_resp::UserDetails as WireUserDetails;
use stele_proto::users::users_server::Users as UsersRpc;
use stele_proto::users::{
    ChangePasswordReq, ChangePasswordResp, CreateReq, CreateResp, DeleteReq, DeleteResp,
    DetailsReq, DetailsResp, DisableReq, DisableResp, EnableReq, EnableResp, ResetPasswordReq,
    ResetPasswordResp, UpdateReq, UpdateResp,
};
use stele_services::access::AccessControl;
use stele_services::users::{record, UserDetails, Users};
use tonic::{Request, Response, Status};

use super::status;

#[cfg(test)]
pub(crate) mod tests;

/// The Users service of a node.
#[derive(Clone)]
pub struct UsersService {
    users: Users,
    access: AccessControl,
}

impl UsersService {
    pub fn new(users: Users, access: AccessControl) -> Self {
        UsersService { users, access }
    }

    /// Refuses the request unless its caller may perform `operation`.
    fn authorize<T>(&self, request: &Request<T>, operation: Operation) -> Result<(), Status> {
        self.access
            .check_operation(&principal(request), operation)
            .map_err(|_| status::access_denied())
    }
}

/// Why `login` is not a login name a request may name (empty, too long, a control
/// character), shared with the HTTP routes.
pub(crate) fn check_login(login: &str) -> Result<(), String> {
    record::check_fields(login, "", &[]).map_err(|e| e.to_string())
}

/// A request's login name, checked.
fn checked_login(login: String) -> Result<String, Status> {
    check_login(&login).map_err(status::invalid_argument)?;
    Ok(login)
}

/// The `options` every request carries.
fn required_options<T>(options: Option<T>) -> Result<T, Status> {
    options.ok_or_else(|| status::required_argument("options", "Options"))
}

fn to_wire(details: UserDetails) -> DetailsResp {
    DetailsResp {
        user_details: Some(WireUserDetails {
            login_name: details.login_name,
            full_name: details.full_name,
            groups: details.groups,
            last_updated: details
                .last_updated
                .map(|ticks_since_epoch| DateTime { ticks_since_epoch }),
            disabled: details.disabled,
        }),
    }
}

/// The stream of Details answers.
pub type DetailsStream = Pin<Box<dyn Stream<Item = Result<DetailsResp, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl UsersRpc for UsersService {
    async fn create(&self, request: Request<CreateReq>) -> Result<Response<CreateResp>, Status> {
        self.authorize(&request, Operation::UserCreate)?;
        let options = required_options(request.into_inner().options)?;
        let login = checked_login(options.login_name)?;
        self.users
            .create(
                &login,
                &options.full_name,
                &options.groups,
                &options.password,
            )
            .await
            .map_err(|e| status::user_error(&e))?;
        Ok(Response::new(CreateResp {}))
    }

    async fn update(&self, request: Request<UpdateReq>) -> Result<Response<UpdateResp>, Status> {
        self.authorize(&request, Operation::UserUpdate)?;
        let options = required_options(request.into_inner().options)?;
        let login = checked_login(options.login_name)?;
        self.users
            .update(&login, &options.full_name, &options.groups)
            .await
            .map_err(|e| status::user_error(&e))?;
        Ok(Response::new(UpdateResp {}))
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        self.authorize(&request, Operation::UserDelete)?;
        let login = checked_login(required_options(request.into_inner().options)?.login_name)?;
        self.users
            .delete(&login)
            .await
            .map_err(|e| status::user_error(&e))?;
        Ok(Response::new(DeleteResp {}))
    }

    async fn disable(&self, request: Request<DisableReq>) -> Result<Response<DisableResp>, Status> {
        self.authorize(&request, Operation::UserDisable)?;
        let login = checked_login(required_options(request.into_inner().options)?.login_name)?;
        self.users
            .disable(&login)
            .await
            .map_err(|e| status::user_error(&e))?;
        Ok(Response::new(DisableResp {}))
    }

    async fn enable(&self, request: Request<EnableReq>) -> Result<Response<EnableResp>, Status> {
        self.authorize(&request, Operation::UserEnable)?;
        let login = checked_login(required_options(request.into_inner().options)?.login_name)?;
        self.users
            .enable(&login)
            .await
            .map_err(|e| status::user_error(&e))?;
        Ok(Response::new(EnableResp {}))
    }

    type DetailsStream = DetailsStream;

    async fn details(
        &self,
        request: Request<DetailsReq>,
    ) -> Result<Response<Self::DetailsStream>, Status> {
        // The options are optional here: none asks for every user, as an empty name does.
        let name = request
            .get_ref()
            .options
            .as_ref()
            .map(|o| o.login_name.clone())
            .unwrap_or_default();
        let users = if name.is_empty() {
            self.authorize(&request, Operation::UserList)?;
            self.users.all_details().await
        } else {
            self.authorize(&request, Operation::UserDetails)?;
            let name = checked_login(name)?;
            self.users.details(&name).await.map(|user| vec![user])
        }
        .map_err(|e| status::user_error(&e))?;
        let answers = users.into_iter().map(|user| Ok(to_wire(user)));
        Ok(Response::new(Box::pin(futures::stream::iter(answers))))
    }

    async fn change_password(
        &self,
        request: Request<ChangePasswordReq>,
    ) -> Result<Response<ChangePasswordResp>, Status> {
        self.authorize(&request, Operation::UserChangePassword)?;
        let options = required_options(request.into_inner().options)?;
        let login = checked_login(options.login_name)?;
        self.users
            .change_password(&login, &options.current_password, &options.new_password)
            .await
            .map_err(|e| status::user_error(&e))?;
        Ok(Response::new(ChangePasswordResp {}))
    }

    async fn reset_password(
        &self,
        request: Request<ResetPasswordReq>,
    ) -> Result<Response<ResetPasswordResp>, Status> {
        self.authorize(&request, Operation::UserResetPassword)?;
        let options = required_options(request.into_inner().options)?;
        let login = checked_login(options.login_name)?;
        self.users
            .reset_password(&login, &options.new_password)
            .await
            .map_err(|e| status::user_error(&e))?;
        Ok(Response::new(ResetPasswordResp {}))
    }
}

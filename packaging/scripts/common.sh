# Shared by every maintainer script of the .deb and the .rpm (packaging.md). Runs as root in a
# folder the service user can write, so: create missing paths only, refuse symbolic links, never
# chown/chmod/write through an existing path under the install folder, and write config.yml as
# the service user (`relaypro install-config` switches to it before it touches the folder).
NAME=binalyze-air-relaypro
UNIT=$NAME.service
DIR=/opt/binalyze/air/relaypro
SERVICE_USER=air-relaypro
ENV_FILE=/etc/environment.d/$NAME.conf

say() { echo "$NAME: $*"; }

systemd_running() { [ -d /run/systemd/system ]; }

ensure_account() {
    if ! getent group "$SERVICE_USER" >/dev/null; then
        groupadd --system "$SERVICE_USER"
    fi
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
        useradd --system --gid "$SERVICE_USER" --home-dir "$DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "Binalyze AIR RelayPro" "$SERVICE_USER"
    fi
}

# The install folder is root's (the package manager made it, and its parents are root's):
# its group and mode are set, after checking it is a real folder.
ensure_install_folder() {
    if [ -L "$DIR" ] || [ ! -d "$DIR" ]; then
        say "$DIR is not a folder (a symbolic link?); refusing to continue"
        exit 1
    fi
    chgrp "$SERVICE_USER" "$DIR"
    chmod 1775 "$DIR"
}

# A folder under the install folder: made by the service user when missing, left alone otherwise.
ensure_service_folder() { # NAME MODE
    path=$DIR/$1
    if [ -L "$path" ]; then
        say "warning: $path is a symbolic link; left alone (RelayPro refuses it at start)"
        return 0
    fi
    if [ -e "$path" ]; then
        return 0
    fi
    runuser -u "$SERVICE_USER" -- mkdir -m "$2" "$path"
}

# The environment file RelayPro reads itself (config.md): created with comments only when absent,
# root:air-relaypro 0640, kept on upgrade and remove.
ensure_environment_file() {
    if [ -e "$ENV_FILE" ] || [ -L "$ENV_FILE" ]; then
        return 0
    fi
    mkdir -p /etc/environment.d
    tmp=$(mktemp "$ENV_FILE.XXXXXX")
    cat > "$tmp" <<'ENVFILE'
# Environment for Binalyze AIR RelayPro, read by RelayPro itself at start, on reload
# (systemctl reload binalyze-air-relaypro) and on upgrade: KEY=value lines, # comments.
# Examples:
#   https_proxy=http://proxy.example.com:3128
#   NO_PROXY=console.example.com
#   RELAYPRO_PASSWORD_FILE=/opt/binalyze/air/relaypro/passwords.txt
ENVFILE
    chgrp "$SERVICE_USER" "$tmp"
    chmod 0640 "$tmp"
    mv "$tmp" "$ENV_FILE"
}

# config.yml from the AIR_* inputs, or the template; sets READY=yes when the service can start.
write_config() {
    READY=no
    set +e
    "$DIR/relaypro" install-config --config "$DIR/config.yml"
    rc=$?
    set -e
    case $rc in
    0) READY=yes ;;
    78) READY=no ;;
    *)
        say "config.yml could not be written (exit $rc)"
        exit 1
        ;;
    esac
}

prepare() {
    ensure_account
    ensure_install_folder
    ensure_service_folder logs 0750
    ensure_service_folder private 0700
    ensure_environment_file
    write_config
}

next_step() {
    say "enabled but not started: RelayPro needs its console. Either install again with"
    say "  AIR_CONSOLE_ADDRESS, AIR_ORGANIZATION_ID and AIR_DEPLOYMENT_TOKEN set (sudo -E dpkg -i / sudo -E dnf install),"
    say "or set consoleAddress, organizationId and deploymentToken in $DIR/config.yml, then:"
    say "  systemctl start $NAME"
}

# A fresh installation: enable, and start when config.yml is ready.
configure_install() {
    prepare
    if ! systemd_running; then
        say "systemd is not running here (a container or chroot): the service is neither enabled nor started;"
        say "where systemd runs: systemctl enable --now $NAME"
        return 0
    fi
    systemctl daemon-reload
    systemctl enable "$UNIT" >/dev/null 2>&1 || systemctl enable "$UNIT"
    if [ "$READY" = yes ]; then
        systemctl start "$UNIT"
        say "installed, enabled and started"
    else
        next_step
    fi
}

# An upgrade: the new binary is in place; the running service switches to it without dropping
# a connection (relaypro upgrade). Not running: started. A failed switch fails this script with
# the reason, so running the same install command again retries.
configure_upgrade() {
    prepare
    if ! systemd_running; then
        say "systemd is not running here (a container or chroot): nothing to switch; the new binary runs at the next start"
        return 0
    fi
    systemctl daemon-reload
    if systemctl is-active --quiet "$UNIT"; then
        if ! "$DIR/relaypro" upgrade --config "$DIR/config.yml"; then
            say "the running service could not switch to the new binary (reason above); the old one still serves."
            say "Fix the reason, then run the same install command again."
            exit 1
        fi
        say "upgraded without downtime"
    elif [ "$READY" = yes ]; then
        systemctl start "$UNIT"
        say "upgraded and started"
    else
        next_step
    fi
}

# Removal (not an upgrade): stop and disable; config.yml, logs/, private/, the environment file
# and the account stay (the operator's guide says how to remove them).
stop_for_removal() {
    if systemd_running; then
        systemctl stop "$UNIT" || true
        systemctl disable "$UNIT" >/dev/null 2>&1 || true
    else
        say "systemd is not running here: nothing to stop"
    fi
}

after_removal() {
    if systemd_running; then
        systemctl daemon-reload || true
    fi
    say "removed; kept $DIR/config.yml, logs/, private/, $ENV_FILE and the $SERVICE_USER account"
}

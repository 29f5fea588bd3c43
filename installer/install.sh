#!/bin/sh
# spinlet installer, in the style of k3s's get.k3s.io:
#
#   curl -sfL https://<base-url>/install.sh | sh -
#   curl -sfL https://<base-url>/install.sh | INSTALL_SPINLET_EXEC="server --tls-san edge.local" sh -
#   curl -sfL https://<base-url>/install.sh | SPINLET_URL=https://server:6443 SPINLET_TOKEN=K10... sh -
#   (a K10 token from the server's <data-dir>/server/token carries the CA's hash: the agent
#   fetches the CA and checks it; with an older bare token, SPINLET_CA_FILE names the CA)
#
# Environment:
#   INSTALL_SPINLET_BASE_URL      folder holding spinlet-<arch> and sha256sum-<arch>.txt
#                                 (default: the GitHub release of INSTALL_SPINLET_VERSION,
#                                 or the latest); http(s):// or file://
#   INSTALL_SPINLET_VERSION       release to install with the default base URL
#   INSTALL_SPINLET_SKIP_DOWNLOAD true: use the binary already in the bin dir (air gap)
#   INSTALL_SPINLET_BIN_DIR       default /usr/local/bin, or /opt/bin when that is read-only
#   INSTALL_SPINLET_SKIP_ENABLE   true: do not enable the service
#   INSTALL_SPINLET_SKIP_START    true: do not (re)start the service
#   INSTALL_SPINLET_FORCE_RESTART true: restart even when nothing changed
#   INSTALL_SPINLET_EXEC          "server|agent [--long-flag value ...]"; also the script's
#                                 arguments. The flags go to /etc/spinlet/config.yaml. A re-run
#                                 without them keeps the previous config.
#   INSTALL_SPINLET_SYMLINK       skip | force; default: only when no kubectl is on PATH, install
#                                 the release's kubectl-<arch> as spinlet-kubectl (what
#                                 `spinlet kubectl` runs) and link kubectl to spinlet
#   INSTALL_SPINLET_INIT          systemd | openrc (default: what the machine runs)
#   INSTALL_SPINLET_ROOT          prefix for /etc and /var/log (for tests: a scratch folder;
#                                 the unit's own paths stay the real ones)
#   SPINLET_URL, SPINLET_TOKEN (or SPINLET_TOKEN_FILE), SPINLET_CA_FILE
#                                 install an agent joining that server
#
# Re-runs upgrade in place and restart the service only when the binary, the unit or the
# config changed ("No change detected" otherwise).
set -e
set -u

GITHUB_URL=${GITHUB_URL:-https://github.com/spinlet/spinlet/releases}
ROOT=${INSTALL_SPINLET_ROOT:-}

info() {
    echo "[INFO]  $*"
}

warn() {
    echo "[WARN]  $*" >&2
}

fatal() {
    echo "[ERROR] $*" >&2
    exit 1
}

is_true() {
    [ "${1:-}" = "true" ]
}

# --- where things go ---
setup_paths() {
    ETC_DIR="${ROOT}/etc/spinlet"
    CONFIG_FILE="${ETC_DIR}/config.yaml"
    if [ -n "${INSTALL_SPINLET_BIN_DIR:-}" ]; then
        BIN_DIR=${INSTALL_SPINLET_BIN_DIR}
    else
        BIN_DIR=/usr/local/bin
        if ! mkdir -p "${BIN_DIR}" 2>/dev/null || ! touch "${BIN_DIR}/.spinlet-ro-test" 2>/dev/null; then
            BIN_DIR=/opt/bin
        fi
        rm -f "/usr/local/bin/.spinlet-ro-test" 2>/dev/null || true
    fi
    mkdir -p "${BIN_DIR}" || fatal "cannot create the bin dir ${BIN_DIR}"
    BIN="${BIN_DIR}/spinlet"
}

# --- server or agent, and the flags ---
setup_command() {
    if [ -n "${INSTALL_SPINLET_EXEC:-}" ] || [ "$#" -gt 0 ]; then
        set -f
        # shellcheck disable=SC2086 # the words of INSTALL_SPINLET_EXEC are meant to split
        set -- ${INSTALL_SPINLET_EXEC:-} "$@"
        set +f
        NEW_OPTIONS=true
    else
        NEW_OPTIONS=false
    fi
    case "${1:-}" in
        server | agent)
            CMD=$1
            shift
            ;;
        -*)
            if [ -n "${SPINLET_URL:-}" ]; then CMD=agent; else CMD=server; fi
            ;;
        "")
            if [ -n "${SPINLET_URL:-}" ]; then
                CMD=agent
            elif [ -f "${ROOT}/etc/systemd/system/spinlet-agent.service" ] || [ -f "${ROOT}/etc/init.d/spinlet-agent" ]; then
                CMD=agent
            else
                CMD=server
            fi
            ;;
        *)
            fatal "INSTALL_SPINLET_EXEC must start with server or agent, not '$1'"
            ;;
    esac
    OPTIONS_FILE="${TMP_DIR}/options"
    : >"${OPTIONS_FILE}"
    # One "key<TAB>value" line per flag, turned into YAML by write_config.
    while [ "$#" -gt 0 ]; do
        case "$1" in
            --*=*)
                key=${1%%=*}
                printf '%s\t%s\n' "${key#--}" "${1#*=}" >>"${OPTIONS_FILE}"
                ;;
            --*)
                key=${1#--}
                if [ "$#" -gt 1 ]; then
                    case "$2" in
                        -*) printf '%s\t\001true\n' "${key}" >>"${OPTIONS_FILE}" ;;
                        *)
                            printf '%s\t%s\n' "${key}" "$2" >>"${OPTIONS_FILE}"
                            shift
                            ;;
                    esac
                else
                    printf '%s\t\001true\n' "${key}" >>"${OPTIONS_FILE}"
                fi
                ;;
            *)
                fatal "INSTALL_SPINLET_EXEC: '$1' is not a long flag (use --flag-name value; they go to ${CONFIG_FILE})"
                ;;
        esac
        shift
    done
    if [ "${CMD}" = agent ] && [ -n "${SPINLET_URL:-}" ]; then
        # Checked before anything is downloaded or written.
        case "${SPINLET_URL}" in
            https://*) ;;
            *) fatal "SPINLET_URL must be an https:// URL, not ${SPINLET_URL}" ;;
        esac
        [ -n "${SPINLET_TOKEN:-}" ] || [ -n "${SPINLET_TOKEN_FILE:-}" ] ||
            fatal "SPINLET_URL is set: SPINLET_TOKEN or SPINLET_TOKEN_FILE is required (the server's <data-dir>/server/token)"
        if [ -z "${SPINLET_CA_FILE:-}" ]; then
            token="${SPINLET_TOKEN:-}"
            if [ -z "${token}" ] && [ -r "${SPINLET_TOKEN_FILE:-}" ]; then
                token=$(head -n 1 "${SPINLET_TOKEN_FILE}")
            fi
            case "${token}" in
                K10*) ;;
                *) fatal "SPINLET_URL is set with a token that is not in K10 form: SPINLET_CA_FILE is required (the server's <data-dir>/server/tls/server-ca.crt)" ;;
            esac
        fi
    fi
    if [ "${CMD}" = agent ]; then
        SERVICE=spinlet-agent
    else
        SERVICE=spinlet
    fi
}

# --- architecture and download ---
setup_arch() {
    case "${ARCH:-$(uname -m)}" in
        x86_64 | amd64) ARCH=amd64 ;;
        aarch64 | arm64) ARCH=arm64 ;;
        *) fatal "unsupported architecture $(uname -m): spinlet ships amd64 and arm64" ;;
    esac
}

download() {
    # download <url> <file>
    case "$1" in
        file://*)
            cp "${1#file://}" "$2" 2>/dev/null || fatal "download of $1 failed"
            ;;
        *)
            if command -v curl >/dev/null 2>&1; then
                curl -sfL -o "$2" "$1" || fatal "download of $1 failed"
            elif command -v wget >/dev/null 2>&1; then
                wget -qO "$2" "$1" || fatal "download of $1 failed"
            else
                fatal "neither curl nor wget is installed"
            fi
            ;;
    esac
}

sha256() {
    sha256sum "$1" | awk '{print $1}'
}

setup_base_url() {
    if [ -n "${INSTALL_SPINLET_BASE_URL:-}" ]; then
        BASE_URL=${INSTALL_SPINLET_BASE_URL%/}
    elif [ -n "${INSTALL_SPINLET_VERSION:-}" ]; then
        BASE_URL="${GITHUB_URL}/download/${INSTALL_SPINLET_VERSION}"
    else
        BASE_URL="${GITHUB_URL}/latest/download"
    fi
}

# fetch_release: the checksum file, then every asset this run installs (the binary and,
# when wanted, the pinned kubectl), each verified against it, into TMP_DIR. Nothing is
# installed before all of them are verified.
fetch_release() {
    if is_true "${INSTALL_SPINLET_SKIP_DOWNLOAD:-}"; then
        [ -x "${BIN}" ] || fatal "INSTALL_SPINLET_SKIP_DOWNLOAD=true but ${BIN} is not an executable file"
        info "Skipping download; using ${BIN}"
        return
    fi
    setup_base_url
    info "Downloading the checksum ${BASE_URL}/sha256sum-${ARCH}.txt"
    download "${BASE_URL}/sha256sum-${ARCH}.txt" "${TMP_DIR}/sha256sum.txt"
    fetch_asset "spinlet-${ARCH}" "${BIN}" ||
        fatal "sha256sum-${ARCH}.txt has no line for spinlet-${ARCH}"
    if [ "${WANT_KUBECTL}" = true ] && ! fetch_asset "kubectl-${ARCH}" "${KUBECTL}"; then
        warn "sha256sum-${ARCH}.txt has no line for kubectl-${ARCH}: this release carries no kubectl"
    fi
}

# fetch_asset <asset> <installed path>: returns 1 when the checksum file has no line for
# <asset>; leaves a verified copy in TMP_DIR/<asset> unless <installed path> already has
# that sha256.
fetch_asset() {
    expected=$(awk -v f="$1" '$2 == f || $2 == "*" f {print $1}' "${TMP_DIR}/sha256sum.txt")
    [ -n "${expected}" ] || return 1
    if [ -f "$2" ] && [ "$(sha256 "$2")" = "${expected}" ]; then
        info "$2 is up to date (sha256 ${expected})"
        return 0
    fi
    info "Downloading ${BASE_URL}/$1"
    download "${BASE_URL}/$1" "${TMP_DIR}/$1"
    actual=$(sha256 "${TMP_DIR}/$1")
    if [ "${actual}" != "${expected}" ]; then
        fatal "Download sha256 does not match: $1 from ${BASE_URL} has ${actual}, sha256sum-${ARCH}.txt says ${expected}; nothing was installed"
    fi
    info "Verified the sha256 of $1"
}

# install_asset <asset> <installed path>: moves a verified download into place.
install_asset() {
    [ -f "${TMP_DIR}/$1" ] || return 0
    chmod 755 "${TMP_DIR}/$1"
    mv -f "${TMP_DIR}/$1" "$2" || fatal "cannot install $2"
    info "Installed $2"
}

# --- config ---
write_config() {
    mkdir -p "${ETC_DIR}"
    if [ "${CMD}" = agent ] && [ -n "${SPINLET_URL:-}" ]; then
        if [ -n "${SPINLET_TOKEN:-}" ]; then
            (umask 077 && printf '%s\n' "${SPINLET_TOKEN}" >"${ETC_DIR}/agent-token.new")
        elif [ -n "${SPINLET_TOKEN_FILE:-}" ]; then
            (umask 077 && cp "${SPINLET_TOKEN_FILE}" "${ETC_DIR}/agent-token.new") || fatal "cannot read SPINLET_TOKEN_FILE ${SPINLET_TOKEN_FILE}"
        fi
        replace_if_changed "${ETC_DIR}/agent-token"
        printf 'server\t%s\ntoken-file\t/etc/spinlet/agent-token\n' "${SPINLET_URL}" >>"${OPTIONS_FILE}"
        if [ -n "${SPINLET_CA_FILE:-}" ]; then
            cp "${SPINLET_CA_FILE}" "${ETC_DIR}/server-ca.crt.new" || fatal "cannot read SPINLET_CA_FILE ${SPINLET_CA_FILE}"
            replace_if_changed "${ETC_DIR}/server-ca.crt"
            printf 'ca-file\t/etc/spinlet/server-ca.crt\n' >>"${OPTIONS_FILE}"
        fi
        NEW_OPTIONS=true
    fi
    if [ "${NEW_OPTIONS}" = false ] && [ -f "${CONFIG_FILE}" ]; then
        info "Keeping the options of the previous install in ${CONFIG_FILE}"
        rm -f "${OPTIONS_FILE}"
        return
    fi
    {
        echo "# Written by spinlet's install.sh from INSTALL_SPINLET_EXEC and its arguments."
        echo "# Keys are the long flags of 'spinlet ${CMD}'; drop-ins go in config.yaml.d/."
        awk -F '\t' '
            function quote(v) {
                gsub(/\\/, "\\\\", v); gsub(/"/, "\\\"", v)
                return "\"" v "\""
            }
            {
                if (!($1 in count)) { order[++n] = $1 }
                count[$1]++
                value[$1, count[$1]] = $2
            }
            END {
                for (i = 1; i <= n; i++) {
                    k = order[i]
                    if (count[k] == 1) {
                        v = value[k, 1]
                        if (v == "\001true") { print k ": true" } else { print k ": " quote(v) }
                    } else {
                        print k ":"
                        for (j = 1; j <= count[k]; j++) { print "  - " quote(value[k, j]) }
                    }
                }
            }' "${OPTIONS_FILE}"
    } >"${CONFIG_FILE}.new"
    rm -f "${OPTIONS_FILE}"
    chmod 600 "${CONFIG_FILE}.new"
    replace_if_changed "${CONFIG_FILE}"
    info "Config ${CONFIG_FILE} ${WROTE}"
}

# replace_if_changed <file>: moves <file>.new over <file> when they differ; sets
# WROTE to "written" or "unchanged".
replace_if_changed() {
    if [ -f "$1" ] && cmp -s "$1" "$1.new"; then
        rm -f "$1.new"
        WROTE=unchanged
    else
        mv -f "$1.new" "$1"
        WROTE=written
    fi
}

# --- memory cgroup ---
check_memory_cgroup() {
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        grep -qw memory /sys/fs/cgroup/cgroup.controllers && return
    elif [ -f /proc/cgroups ]; then
        awk '$1 == "memory" && $4 == 1 {found = 1} END {exit !found}' /proc/cgroups && return
    fi
    cmdline=/boot/firmware/cmdline.txt
    [ -f "${cmdline}" ] || cmdline=/boot/cmdline.txt
    warn "The memory cgroup is not enabled: pod memory limits will not apply."
    warn "On a Raspberry Pi, add 'cgroup_memory=1 cgroup_enable=memory' to ${cmdline} and reboot."
}

# --- service ---
setup_init() {
    case "${INSTALL_SPINLET_INIT:-}" in
        systemd | openrc) INIT=${INSTALL_SPINLET_INIT} ;;
        "")
            if [ -d /run/systemd/system ] || command -v systemctl >/dev/null 2>&1; then
                INIT=systemd
            elif [ -x /sbin/openrc-run ] || command -v openrc-run >/dev/null 2>&1; then
                INIT=openrc
            else
                fatal "neither systemd nor OpenRC found; set INSTALL_SPINLET_INIT"
            fi
            ;;
        *) fatal "INSTALL_SPINLET_INIT must be systemd or openrc, not ${INSTALL_SPINLET_INIT}" ;;
    esac
    if [ "${INIT}" = systemd ]; then
        UNIT_FILE="${ROOT}/etc/systemd/system/${SERVICE}.service"
        ENV_FILE="${UNIT_FILE}.env"
    else
        UNIT_FILE="${ROOT}/etc/init.d/${SERVICE}"
        ENV_FILE="${ETC_DIR}/${SERVICE}.env"
    fi
}

write_env_file() {
    mkdir -p "$(dirname "${ENV_FILE}")"
    (
        umask 077
        env | grep -E '^(SPINLET_|HTTP_PROXY=|HTTPS_PROXY=|NO_PROXY=|http_proxy=|https_proxy=|no_proxy=)' |
            grep -Ev '^SPINLET_(URL|TOKEN|TOKEN_FILE|CA_FILE|BIN)=' | sort >"${ENV_FILE}.new"
    ) || true
    chmod 600 "${ENV_FILE}.new"
    replace_if_changed "${ENV_FILE}"
}

write_systemd_unit() {
    mkdir -p "$(dirname "${UNIT_FILE}")"
    cat >"${UNIT_FILE}.new" <<EOF
[Unit]
Description=spinlet ${CMD}: Kubernetes for Spin apps
Documentation=https://github.com/spinlet/spinlet
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-/etc/systemd/system/${SERVICE}.service.env
# Only the server or agent is stopped: pod sandboxes outlive it, as containers do.
KillMode=process
Delegate=yes
User=root
# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStart=${BIN} ${CMD}
EOF
    replace_if_changed "${UNIT_FILE}"
    info "systemd unit ${UNIT_FILE} ${WROTE}"
}

write_openrc_service() {
    mkdir -p "$(dirname "${UNIT_FILE}")"
    cat >"${UNIT_FILE}.new" <<EOF
#!/sbin/openrc-run

depend() {
    after network-online
    want cgroups
}

supervisor=supervise-daemon
name=${SERVICE}
command="${BIN}"
command_args="${CMD}"
output_log=/var/log/${SERVICE}.log
error_log=/var/log/${SERVICE}.log
pidfile="/var/run/${SERVICE}.pid"
respawn_delay=5
respawn_max=0

set -o allexport
if [ -f /etc/environment ]; then . /etc/environment; fi
if [ -f /etc/spinlet/${SERVICE}.env ]; then . /etc/spinlet/${SERVICE}.env; fi
set +o allexport
EOF
    chmod 755 "${UNIT_FILE}.new"
    replace_if_changed "${UNIT_FILE}"
    service_state=${WROTE}
    mkdir -p "${ROOT}/etc/logrotate.d"
    cat >"${ROOT}/etc/logrotate.d/${SERVICE}" <<EOF
/var/log/${SERVICE}.log {
	missingok
	notifempty
	copytruncate
}
EOF
    info "OpenRC service ${UNIT_FILE} ${service_state}"
}

# --- kubectl, wrappers ---
# setup_kubectl: WANT_KUBECTL=true when this run installs the release's pinned kubectl
# (as spinlet-kubectl, which `spinlet kubectl` runs) and links kubectl to spinlet: only
# when no other kubectl is on PATH (our own earlier link does not count), or
# INSTALL_SPINLET_SYMLINK=force.
setup_kubectl() {
    KUBECTL="${BIN_DIR}/spinlet-kubectl"
    LINK="${BIN_DIR}/kubectl"
    WANT_KUBECTL=false
    case "${INSTALL_SPINLET_SYMLINK:-}" in
        skip)
            info "Skipping kubectl (INSTALL_SPINLET_SYMLINK=skip)"
            return
            ;;
        force) ;;
        *)
            existing=$(command -v kubectl 2>/dev/null || true)
            if [ -n "${existing}" ] && ! is_our_link "${existing}"; then
                info "kubectl is already on PATH (${existing}); not installing one"
                return
            fi
            ;;
    esac
    WANT_KUBECTL=true
}

# is_our_link <path>: a symlink to spinlet in the bin dir.
is_our_link() {
    [ "$1" = "${LINK}" ] && [ -L "$1" ] && [ "$(readlink "$1")" = spinlet ]
}

install_kubectl() {
    [ "${WANT_KUBECTL}" = true ] || return 0
    if is_true "${INSTALL_SPINLET_SKIP_DOWNLOAD:-}"; then
        if [ -x "${KUBECTL}" ]; then
            info "Using ${KUBECTL} in place"
        else
            warn "No ${KUBECTL} (INSTALL_SPINLET_SKIP_DOWNLOAD=true): put the release's kubectl-${ARCH} there for 'spinlet kubectl'"
        fi
    else
        install_asset "kubectl-${ARCH}" "${KUBECTL}"
    fi
    if [ -e "${LINK}" ] && [ ! -L "${LINK}" ]; then
        info "${LINK} exists and is not a symlink; leaving it"
        return
    fi
    if is_our_link "${LINK}"; then
        info "${LINK} already links to spinlet"
        return
    fi
    ln -sf spinlet "${LINK}"
    info "Linked ${LINK} to spinlet (spinlet kubectl, with this server's kubeconfig)"
}

write_wrappers() {
    for what in killall uninstall; do
        script="${BIN_DIR}/spinlet-${what}.sh"
        {
            echo "#!/bin/sh"
            echo "# Written by spinlet's install.sh: runs 'spinlet ${what}'."
            echo "set -e"
            if [ -n "${ROOT}" ]; then
                echo "export SPINLET_SYSTEM_ROOT='${ROOT}'"
                echo "export SPINLET_CONFIG_FILE='${CONFIG_FILE}'"
            fi
            if [ "${what}" = uninstall ]; then
                echo "'${BIN}' uninstall \"\$@\""
                echo "rm -f '${KUBECTL}'"
            else
                echo "exec '${BIN}' ${what} \"\$@\""
            fi
        } >"${script}"
        chmod 755 "${script}"
    done
    info "Wrote ${BIN_DIR}/spinlet-killall.sh and ${BIN_DIR}/spinlet-uninstall.sh"
}

# --- change detection and start ---
fingerprint() {
    for f in "${BIN}" "${UNIT_FILE}" "${ENV_FILE}" "${CONFIG_FILE}" "${ETC_DIR}/agent-token" "${ETC_DIR}/server-ca.crt"; do
        if [ -f "$f" ]; then sha256 "$f"; else echo "-"; fi
    done
}

enable_and_start() {
    if [ -n "${ROOT}" ]; then
        # A scratch root (tests): the machine's service manager is never touched.
        INSTALL_SPINLET_SKIP_ENABLE=true
        INSTALL_SPINLET_SKIP_START=true
    fi
    if [ "${INIT}" = systemd ]; then
        [ -n "${ROOT}" ] || systemctl daemon-reload >/dev/null 2>&1 || true
        if is_true "${INSTALL_SPINLET_SKIP_ENABLE:-}"; then
            info "Skipping enabling the service (INSTALL_SPINLET_SKIP_ENABLE=true)"
        else
            info "Enabling ${SERVICE}.service"
            systemctl enable "${SERVICE}.service" >/dev/null || fatal "systemctl enable ${SERVICE} failed"
        fi
    else
        if is_true "${INSTALL_SPINLET_SKIP_ENABLE:-}"; then
            info "Skipping enabling the service (INSTALL_SPINLET_SKIP_ENABLE=true)"
        else
            info "Enabling the ${SERVICE} service"
            rc-update add "${SERVICE}" default >/dev/null || fatal "rc-update add ${SERVICE} failed"
        fi
    fi
    if [ "${BEFORE}" = "${AFTER}" ] && ! is_true "${INSTALL_SPINLET_FORCE_RESTART:-}"; then
        info "No change detected so skipping service start"
        return
    fi
    if is_true "${INSTALL_SPINLET_SKIP_START:-}"; then
        info "Changes made; skipping service start (INSTALL_SPINLET_SKIP_START=true)"
        return
    fi
    info "Starting ${SERVICE}"
    if [ "${INIT}" = systemd ]; then
        systemctl restart "${SERVICE}.service" || fatal "systemctl restart ${SERVICE} failed: see journalctl -u ${SERVICE}"
    else
        rc-service "${SERVICE}" restart || fatal "rc-service ${SERVICE} restart failed: see /var/log/${SERVICE}.log"
    fi
    if [ "${CMD}" = server ] && ! "${BIN}" kubectl version --client >/dev/null 2>&1; then
        info "No kubectl for spinlet: not waiting for the node (see the service's log)"
    elif [ "${CMD}" = server ]; then
        info "Waiting for the node to be Ready"
        i=0
        until "${BIN}" kubectl get nodes 2>/dev/null | grep -q ' Ready'; do
            i=$((i + 1))
            [ "$i" -lt 120 ] || fatal "the node was not Ready after 120 s: see the service's log"
            sleep 1
        done
        info "spinlet is running; try: ${BIN} kubectl get nodes"
    fi
}

main() {
    if [ -z "${ROOT}" ] && [ "$(id -u)" -ne 0 ]; then
        fatal "run as root (curl -sfL ... | sudo sh -)"
    fi
    TMP_DIR=$(mktemp -d)
    trap 'rm -rf "${TMP_DIR}"' EXIT
    setup_paths
    setup_command "$@"
    setup_arch
    setup_init
    setup_kubectl
    BEFORE=$(fingerprint)
    fetch_release
    install_asset "spinlet-${ARCH}" "${BIN}"
    write_config
    check_memory_cgroup
    write_env_file
    if [ "${INIT}" = systemd ]; then write_systemd_unit; else write_openrc_service; fi
    install_kubectl
    write_wrappers
    AFTER=$(fingerprint)
    enable_and_start
}

main "$@"

#!/bin/sh
# The users and groups of fr's images, with fixed ids: the volumes shared between containers keep
# their owners whichever image made them. Run in every image before packages that add users.
set -eu
g() { groupadd -r -g "$2" "$1"; }
u() { useradd -r -M -d /nonexistent -s /usr/sbin/nologin -u "$2" -g "$2" ${3:+-G "$3"} "$1"; }
g fr-tls 1890          # may read the TLS key (/etc/fr/tls/privkey.pem)
g mosquitto 1883
g fr-web 1884
g fr-php 1885
g fr-nginx 1886
g fr-certbot 1887
u mosquitto 1883 fr-tls          # the broker
u fr-web 1884                    # frAroundWeb
u fr-php 1885                    # php-fpm
u fr-nginx 1886 fr-tls,fr-php    # nginx (php-fpm's socket is group fr-php)
u fr-certbot 1887 fr-tls         # certbot and its deploy hook

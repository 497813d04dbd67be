# Installation and the Debian package (README.md, "Running in production").
#
# `cmake --install build [--prefix /usr]` puts stokend and stokenctl in
# sbin (stokenctl beside the daemon, as Postfix's postqueue and postsuper
# are: it is the administrator's tool), the configuration (the packaged
# one, with absolute paths) in SYSCONFDIR/stokend/stokend.yaml, the manual
# pages stokend(8), stokenctl(8) and stokend.yaml(5), and the systemd unit.
# It installs what is built and builds nothing; scripts/build-deb makes the
# package from a build configured with STOKEND_TESTS=OFF, which builds only
# the libraries, the daemon and the tool.
#
# The package (cpack -G DEB): Depends from dpkg-shlibdeps on the runtime
# libraries, plus adduser; the maintainer scripts in packaging/debian/
# create the system user and group stokend and its folders; everything
# under /etc is a conffile.
include(GNUInstallDirs)

install(TARGETS stokend stokenctl RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(FILES ${CMAKE_SOURCE_DIR}/etc/stokend-packaged.yaml
  DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/stokend RENAME stokend.yaml
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${CMAKE_SOURCE_DIR}/man/stokend.8 ${CMAKE_SOURCE_DIR}/man/stokenctl.8
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CMAKE_SOURCE_DIR}/man/stokend.yaml.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
# Debian 12 reads units from /usr/lib/systemd/system (merged /usr) as
# well as /lib/systemd/system.
set(STOKEND_SYSTEMD_UNIT_DIR "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" CACHE PATH
  "Where the systemd unit is installed")
install(FILES ${CMAKE_SOURCE_DIR}/etc/systemd/stokend.service
  DESTINATION ${STOKEND_SYSTEMD_UNIT_DIR})

set(CPACK_PACKAGE_NAME stokend)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "stokend maintainers <postmaster@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "SMTP relay with the SMTP Submission Token extension for COI (Chat Over IMAP)")
set(CPACK_PACKAGE_DESCRIPTION
  "stokend fronts a mail provider's MX and submission ports with a durable queue\n and implements the SMTP Submission Token extension (Token Server and fast lane).")
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_PROVIDES "")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
  ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
  ${CMAKE_SOURCE_DIR}/packaging/debian/postrm
  ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# The programs without their debugging symbols (RelWithDebInfo keeps them
# in the build folder).
set(CPACK_STRIP_FILES ON)
include(CPack)
